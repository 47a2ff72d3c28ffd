import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Jobs a workspace may have on machines at once (ASSIGNED, PREPARING, RUNNING); null: no limit.
  await db.schema.alterTable("workspaces").addColumn("max_jobs", "integer").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("workspaces").dropColumn("max_jobs").execute();
}
