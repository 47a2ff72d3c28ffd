import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Since when the workspace keeps prompts and answers in its audit events (its GDPR choice); null: never.
  await db.schema.alterTable("workspaces").addColumn("audit_content_since", "bigint").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("workspaces").dropColumn("audit_content_since").execute();
}
