import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // One id per request from the gateway to the engine's log (design decision 9): a usage row and a
  // job keep the id of the request that made them. Rows written before have none (null).
  await db.schema.alterTable("usage").addColumn("request_id", "text").execute();
  await db.schema.alterTable("jobs").addColumn("request_id", "text").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("jobs").dropColumn("request_id").execute();
  await db.schema.alterTable("usage").dropColumn("request_id").execute();
}
