import { type Kysely, sql } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("jobs")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("key_id", "text")
    .addColumn("idempotency_key", "text")
    .addColumn("spec", "text", (c) => c.notNull())
    .addColumn("priority", "integer", (c) => c.notNull())
    .addColumn("queued_at", "bigint", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("max_retries", "integer", (c) => c.notNull())
    .addColumn("machine_id", "text")
    .addColumn("version", "integer", (c) => c.notNull())
    .addColumn("exit_code", "integer")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("started_at", "bigint")
    .addColumn("finished_at", "bigint")
    .execute();
  // The queue's order, read from the front: only QUEUED rows are in it.
  await db.schema
    .createIndex("jobs_queue")
    .on("jobs")
    .columns(["priority desc", "queued_at", "id"])
    .where(sql.ref("state"), "=", "QUEUED")
    .execute();
  await db.schema.createIndex("jobs_workspace").on("jobs").columns(["workspace_id", "created_at"]).execute();
  await db.schema
    .createIndex("jobs_idempotency")
    .on("jobs")
    .columns(["workspace_id", "idempotency_key"])
    .unique()
    .where(sql.ref("idempotency_key"), "is not", null)
    .execute();
  await db.schema
    .createTable("job_events")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("reason", "text")
    .addColumn("machine_id", "text")
    .addPrimaryKeyConstraint("job_events_pkey", ["job_id", "seq"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("job_events").execute();
  await db.schema.dropTable("jobs").execute();
}
