import type { Kysely } from "kysely";

// Migrations never import application code: they describe the schema as it was on their date.
// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("deployments")
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("sha256", "text")
    .addColumn("engine", "text")
    .addColumn("min_replicas", "integer", (c) => c.notNull())
    .addColumn("max_replicas", "integer", (c) => c.notNull())
    .addColumn("idle_seconds", "integer", (c) => c.notNull())
    .addColumn("pool", "text", (c) => c.notNull().references("pools.name"))
    .addColumn("gpu", "text", (c) => c.notNull())
    .addColumn("min_vram_bytes", "bigint")
    // Comma-separated ISO 3166 alpha-2 codes; "" for anywhere.
    .addColumn("countries", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("region", "text")
    .addColumn("context_size", "integer")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    // A name is unique within its workspace; two workspaces may both deploy "llama3.2:1b".
    .addPrimaryKeyConstraint("deployments_pkey", ["workspace_id", "name"])
    .execute();

  await db.schema.alterTable("machines").addColumn("country", "text").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("machines").dropColumn("country").execute();
  await db.schema.dropTable("deployments").execute();
}
