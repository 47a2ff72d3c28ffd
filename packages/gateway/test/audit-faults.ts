import type { Store } from "@beta9/store";
import { sql } from "kysely";

/**
 * Make every write to the audit log fail, as a full disk would (the database refuses the insert),
 * while the rest of the store goes on working: what the fail-closed tests need.
 */
export async function refuseAuditWrites(store: Store): Promise<void> {
  if (store.kind === "postgres") {
    await sql
      .raw(`
      CREATE FUNCTION audit_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'disk full (test)'; END $$;
      CREATE TRIGGER audit_disk_full BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_disk_full();
    `)
      .execute(store.db);
    return;
  }
  await sql
    .raw(
      "CREATE TRIGGER audit_disk_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END",
    )
    .execute(store.db);
}
