import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Where a gateway placed a deployment's replica: requests for a deployment go only to these, never
  // to a machine that merely reports serving the name. The deployment is named by its workspace and
  // creation time too, so a deployment removed and made again does not inherit the old placements.
  await db.schema
    .createTable("replica_placements")
    .addColumn("machine_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("deployment_created_at", "bigint", (c) => c.notNull())
    .addColumn("placed_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("replica_placements_pkey", ["machine_id", "model"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("replica_placements").execute();
}
