import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Names are case-insensitive from now on (stored lowercase, as agents store models). A name whose
  // lowercase form another deployment holds already keeps its spelling: it cannot be called any more
  // until it is removed and deployed under another name, but nothing is lost or merged silently.
  const rows: { workspace_id: string; name: string }[] = await db
    .selectFrom("deployments")
    .select(["workspace_id", "name"])
    .execute();
  const taken = new Set(rows.map((r) => r.name));
  for (const r of rows) {
    const lower = r.name.toLowerCase();
    if (lower === r.name || taken.has(lower)) continue;
    await db
      .updateTable("deployments")
      .set({ name: lower })
      .where("workspace_id", "=", r.workspace_id)
      .where("name", "=", r.name)
      .execute();
    taken.add(lower);
  }
}

export async function down(): Promise<void> {}
