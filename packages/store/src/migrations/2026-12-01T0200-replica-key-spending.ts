import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // JSON: API key id → [requests, tokens] this replica admitted and charged for the key, so the other
  // replicas charge them to their own buckets and a key's limits hold across all of them.
  await db.schema
    .alterTable("gateway_replicas")
    .addColumn("spent", "text", (c) => c.notNull().defaultTo("{}"))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("gateway_replicas").dropColumn("spent").execute();
}
