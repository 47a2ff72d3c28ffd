import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // When the row's `held` was last rewritten (ms since the epoch; 0: unknown). A replica rewrites its
  // machines only when they changed or every few intervals, and its peers read them only when this
  // moved, so thousands of machines are not serialised and parsed every two seconds.
  await db.schema
    .alterTable("gateway_replicas")
    .addColumn("held_at", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("gateway_replicas").dropColumn("held_at").execute();
}
