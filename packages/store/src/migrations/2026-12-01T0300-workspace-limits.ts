import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Per-minute limits for all of a workspace's keys together, set by the pool's operator (null: none).
  await db.schema.alterTable("workspaces").addColumn("rpm_limit", "integer").execute();
  await db.schema.alterTable("workspaces").addColumn("tpm_limit", "integer").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("workspaces").dropColumn("tpm_limit").execute();
  await db.schema.alterTable("workspaces").dropColumn("rpm_limit").execute();
}
