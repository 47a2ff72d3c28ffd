import { type Kysely, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Every gateway reads the jobs on machines twice a second: only those rows are in this index, so
  // the read does not grow with the jobs that ended long ago.
  await db.schema
    .createIndex("jobs_active")
    .on("jobs")
    .column("machine_id")
    .where(sql.ref("state"), "in", sql`('ASSIGNED', 'PREPARING', 'RUNNING')`)
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("jobs_active").execute();
}
