import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // JSON: machine id → that machine as the replica holding its agent channel sees it (status, what
  // it serves), so the other replicas show it the same.
  await db.schema
    .alterTable("gateway_replicas")
    .addColumn("held", "text", (c) => c.notNull().defaultTo("{}"))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("gateway_replicas").dropColumn("held").execute();
}
