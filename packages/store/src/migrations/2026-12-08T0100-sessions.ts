import type { Kysely } from "kysely";

const COLUMNS = [
  "expires_at",
  "parent_id",
  "issuer",
  "subject",
  "display_name",
  "refresh_hash",
  "refresh_expires_at",
  "upstream_refresh",
] as const;

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // A signed-in session is a row of api_keys of kind "session": its scopes, workspace, limits, metering
  // and revocation are a key's, so every route and counter takes it unchanged.
  await db.schema
    .alterTable("api_keys")
    .addColumn("kind", "text", (c) => c.notNull().defaultTo("key"))
    .execute();
  // When a session ends (ms); null for keys, which never do.
  await db.schema.alterTable("api_keys").addColumn("expires_at", "bigint").execute();
  // The key a dashboard session was opened with: revoking the key ends its sessions.
  await db.schema.alterTable("api_keys").addColumn("parent_id", "text").execute();
  // A single sign-on identity: the provider (issuer), its subject, and the name shown.
  for (const c of ["issuer", "subject", "display_name"])
    await db.schema.alterTable("api_keys").addColumn(c, "text").execute();
  // The CLI's refresh token (hashed), until when it may be used, and the provider's refresh token
  // sealed under it (only who holds the gateway's refresh token can open it).
  await db.schema.alterTable("api_keys").addColumn("refresh_hash", "text").execute();
  await db.schema.alterTable("api_keys").addColumn("refresh_expires_at", "bigint").execute();
  await db.schema.alterTable("api_keys").addColumn("upstream_refresh", "text").execute();
  await db.schema.createIndex("api_keys_refresh_hash").on("api_keys").column("refresh_hash").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("api_keys_refresh_hash").execute();
  // Sessions are credentials of their own: they do not survive as keys.
  await db.deleteFrom("api_keys").where("kind", "=", "session").execute();
  for (const c of [...COLUMNS, "kind"]) await db.schema.alterTable("api_keys").dropColumn(c).execute();
}
