import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // GPU-hours a workspace's jobs may use in any 24 hours; null: no limit.
  await db.schema.alterTable("workspaces").addColumn("gpu_hours_per_day", "double precision").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("workspaces").dropColumn("gpu_hours_per_day").execute();
}
