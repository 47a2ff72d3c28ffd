import { type Kysely, PostgresAdapter, sql } from "kysely";

const APPEND_ONLY = "audit rows are append-only: they may not be changed or removed";

/**
 * The audit log: events (one hash chain per gateway replica), signed checkpoints, and the record of
 * each pruning. The database itself refuses UPDATE and DELETE on all three; the one way to remove
 * events is retention's: it first appends an audit_prunes row naming a chain and the sequence number
 * (a signed checkpoint's) up to which that chain may go, and only rows at or below it may then be
 * deleted. Anything else — an edit, a removal in the middle, a prune without its record — is refused.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("audit_events")
    .addColumn("chain", "text", (c) => c.notNull())
    .addColumn("seq", "bigint", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("actor_type", "text", (c) => c.notNull())
    .addColumn("actor_id", "text")
    .addColumn("workspace_id", "text")
    .addColumn("workspace", "text")
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("resource", "text")
    .addColumn("outcome", "text", (c) => c.notNull())
    .addColumn("request_id", "text")
    .addColumn("details", "text", (c) => c.notNull())
    .addColumn("prev_hash", "text", (c) => c.notNull())
    .addColumn("hash", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("audit_events_pk", ["chain", "seq"])
    .execute();
  // Reading by time (b9 audit list --since) and a workspace's own events.
  await db.schema.createIndex("audit_events_at").on("audit_events").column("at").execute();
  await db.schema
    .createIndex("audit_events_workspace")
    .on("audit_events")
    .columns(["workspace_id", "at"])
    .execute();
  await db.schema
    .createTable("audit_checkpoints")
    .addColumn("chain", "text", (c) => c.notNull())
    .addColumn("seq", "bigint", (c) => c.notNull())
    .addColumn("hash", "text", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("signature", "text", (c) => c.notNull())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("public_key", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("audit_checkpoints_pk", ["chain", "seq"])
    .execute();
  await db.schema
    .createTable("audit_prunes")
    .addColumn("chain", "text", (c) => c.notNull())
    .addColumn("through_seq", "bigint", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("audit_prunes_pk", ["chain", "through_seq"])
    .execute();

  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql
      .raw(`
      CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION '${APPEND_ONLY}' USING ERRCODE = 'P0001'; END $$;
      CREATE FUNCTION audit_events_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF EXISTS (SELECT 1 FROM audit_prunes p WHERE p.chain = OLD.chain AND OLD.seq <= p.through_seq)
        THEN RETURN OLD; END IF;
        RAISE EXCEPTION '${APPEND_ONLY}' USING ERRCODE = 'P0001';
      END $$;
      CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_refuse();
      CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_delete_guard();
      CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
      CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
        FOR EACH ROW EXECUTE FUNCTION audit_refuse();
      CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
      CREATE TRIGGER audit_prunes_no_change BEFORE UPDATE OR DELETE ON audit_prunes
        FOR EACH ROW EXECUTE FUNCTION audit_refuse();
      CREATE TRIGGER audit_prunes_no_truncate BEFORE TRUNCATE ON audit_prunes
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
    `)
      .execute(db);
    return;
  }
  const refuse = `BEGIN SELECT RAISE(ABORT, '${APPEND_ONLY}'); END`;
  for (const statement of [
    `CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events ${refuse}`,
    `CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       WHEN NOT EXISTS (SELECT 1 FROM audit_prunes p WHERE p.chain = OLD.chain AND OLD.seq <= p.through_seq)
       ${refuse}`,
    `CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints ${refuse}`,
    `CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints ${refuse}`,
    `CREATE TRIGGER audit_prunes_no_update BEFORE UPDATE ON audit_prunes ${refuse}`,
    `CREATE TRIGGER audit_prunes_no_delete BEFORE DELETE ON audit_prunes ${refuse}`,
  ])
    await sql.raw(statement).execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("audit_prunes").execute();
  await db.schema.dropTable("audit_checkpoints").execute();
  await db.schema.dropTable("audit_events").execute();
  // The tables' triggers went with them; on PostgreSQL their functions stay unless dropped.
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql.raw("DROP FUNCTION audit_refuse(); DROP FUNCTION audit_events_delete_guard();").execute(db);
  }
}
