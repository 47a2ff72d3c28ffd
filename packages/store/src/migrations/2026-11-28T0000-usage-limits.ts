import type { Kysely } from "kysely";

// Migrations never import application code: they describe the schema as it was on their date.
// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Per-key limits; null means unlimited.
  await db.schema.alterTable("api_keys").addColumn("rpm_limit", "integer").execute();
  await db.schema.alterTable("api_keys").addColumn("tpm_limit", "integer").execute();

  // One row per inference request. A log: no foreign keys, so recording is never refused and rows
  // outlive what they name.
  await db.schema
    .createTable("usage")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("key_id", "text", (c) => c.notNull())
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("machine_id", "text")
    .addColumn("status", "integer", (c) => c.notNull())
    .addColumn("prompt_tokens", "integer", (c) => c.notNull())
    .addColumn("completion_tokens", "integer", (c) => c.notNull())
    .addColumn("latency_ms", "integer", (c) => c.notNull())
    .addColumn("ttfb_ms", "integer")
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("usage_workspace_started")
    .on("usage")
    .columns(["workspace_id", "started_at"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("usage").execute();
  await db.schema.alterTable("api_keys").dropColumn("tpm_limit").execute();
  await db.schema.alterTable("api_keys").dropColumn("rpm_limit").execute();
}
