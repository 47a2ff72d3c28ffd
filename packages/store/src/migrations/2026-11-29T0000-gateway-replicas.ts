import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // One row per running gateway replica on a shared store: where its peers reach it and what the
  // agents connected to it serve, rewritten every few seconds while it lives.
  await db.schema
    .createTable("gateway_replicas")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("url", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint", (c) => c.notNull())
    .addColumn("machines", "integer", (c) => c.notNull())
    // JSON: model name → how many connected machines serve it ready.
    .addColumn("served", "text", (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("gateway_replicas").execute();
}
