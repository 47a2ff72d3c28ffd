import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // The GPUs a run was given (JSON array of indexes), the log lines counted so far (each line's number),
  // and the last agent event kept, so a re-attach asks only for what came after it.
  await db.schema.alterTable("jobs").addColumn("gpus", "text").execute();
  await db.schema
    .alterTable("jobs")
    .addColumn("log_lines", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("jobs")
    .addColumn("agent_seq", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  // Kept bounded per job: the first and the last lines; those between are deleted as more come.
  await db.schema
    .createTable("job_logs")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("stream", "text", (c) => c.notNull())
    .addColumn("line", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("job_logs_pkey", ["job_id", "seq"])
    .execute();
  // Inputs and outputs, content-addressed per workspace; base64 text, the same in both dialects.
  await db.schema
    .createTable("job_blobs")
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("sha256", "text", (c) => c.notNull())
    .addColumn("size", "bigint", (c) => c.notNull())
    .addColumn("data", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("job_blobs_pkey", ["workspace_id", "sha256"])
    .execute();
  await db.schema
    .createTable("job_outputs")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("sha256", "text", (c) => c.notNull())
    .addColumn("size", "bigint", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("job_outputs_pkey", ["job_id", "name"])
    .execute();
  // What each run used, per machine: runtime × the CPUs and GPUs the job asked for.
  await db.schema
    .createTable("job_usage")
    .addColumn("job_id", "text", (c) => c.notNull())
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("machine_id", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("ended_at", "bigint", (c) => c.notNull())
    .addColumn("cpu_seconds", "double precision", (c) => c.notNull())
    .addColumn("gpu_seconds", "double precision", (c) => c.notNull())
    .addPrimaryKeyConstraint("job_usage_pkey", ["job_id", "attempt"])
    .execute();
  await db.schema
    .createIndex("job_usage_workspace")
    .on("job_usage")
    .columns(["workspace_id", "ended_at"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("job_usage").execute();
  await db.schema.dropTable("job_outputs").execute();
  await db.schema.dropTable("job_blobs").execute();
  await db.schema.dropTable("job_logs").execute();
  await db.schema.alterTable("jobs").dropColumn("agent_seq").execute();
  await db.schema.alterTable("jobs").dropColumn("log_lines").execute();
  await db.schema.alterTable("jobs").dropColumn("gpus").execute();
}
