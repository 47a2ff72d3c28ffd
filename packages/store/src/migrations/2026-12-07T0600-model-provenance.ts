import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // What each machine that pulled a deployment's model said of it (sha256, source, licence …): the
  // AI Act report's model inventory. Kept when the deployment goes: the record is of what was served.
  await db.schema
    .createTable("model_provenance")
    .addColumn("workspace_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("machine_id", "text", (c) => c.notNull())
    // "" when the machine did not know it (an Ollama model before Ollama pulled it): part of the key.
    .addColumn("sha256", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("format", "text", (c) => c.notNull())
    .addColumn("license", "text")
    .addColumn("license_source", "text")
    .addColumn("base_model", "text")
    .addColumn("architecture", "text")
    .addColumn("parameter_count", "bigint")
    .addColumn("quantization", "text")
    .addColumn("context_length", "integer")
    .addColumn("deployment_created_at", "bigint", (c) => c.notNull())
    .addColumn("first_pulled_at", "bigint", (c) => c.notNull())
    .addColumn("last_pulled_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("model_provenance_pkey", ["workspace_id", "model", "machine_id", "sha256"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("model_provenance").execute();
}
