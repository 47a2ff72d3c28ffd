import type { Kysely } from "kysely";

// Migrations never import application code: they describe the schema as it was on their date.
// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("workspaces")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("pools")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("join_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("pool", "text", (c) => c.notNull().references("pools.name"))
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("uses_total", "integer", (c) => c.notNull())
    .addColumn("uses_left", "integer", (c) => c.notNull())
    .addColumn("revoked_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("machines")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("pool", "text", (c) => c.notNull().references("pools.name"))
    .addColumn("hostname", "text", (c) => c.notNull())
    .addColumn("agent_version", "text", (c) => c.notNull())
    .addColumn("hardware", "text", (c) => c.notNull())
    .addColumn("credential_hash", "text", (c) => c.notNull().unique())
    .addColumn("protocol", "text", (c) => c.notNull())
    .addColumn("cordoned_at", "bigint")
    .addColumn("draining_at", "bigint")
    .addColumn("joined_at", "bigint", (c) => c.notNull())
    .addColumn("last_heartbeat_at", "bigint")
    .addColumn("join_token_id", "text")
    .execute();
  await db.schema.createIndex("machines_pool").on("machines").column("pool").execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("workspace_id", "text", (c) => c.notNull().references("workspaces.id"))
    .addColumn("scopes", "text", (c) => c.notNull())
    .addColumn("key_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("revoked_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_used_at", "bigint")
    .execute();

  await db.schema
    .createTable("settings")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("value", "text", (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ["settings", "api_keys", "machines", "join_tokens", "pools", "workspaces"]) {
    await db.schema.dropTable(t).execute();
  }
}
