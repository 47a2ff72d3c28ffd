import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // When a machine's cordon, drain, country or PUE was last set (ms since the epoch; 0: never since
  // this column came). Gateway replicas read what changed since their last read, not every machine's
  // flags every two seconds.
  await db.schema
    .alterTable("machines")
    .addColumn("flags_changed_at", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex("machines_flags_changed_at")
    .on("machines")
    .column("flags_changed_at")
    .execute();
  // Machines removed, and when: the replicas that show them drop them without listing every machine.
  await db.schema
    .createTable("machine_removals")
    .addColumn("id", "text", (c) => c.notNull())
    .addColumn("removed_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("machine_removals_removed_at")
    .on("machine_removals")
    .column("removed_at")
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("machine_removals").execute();
  await db.schema.dropIndex("machines_flags_changed_at").execute();
  await db.schema.alterTable("machines").dropColumn("flags_changed_at").execute();
}
