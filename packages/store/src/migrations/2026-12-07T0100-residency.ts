import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // The country an agent declares of itself is kept apart: only the operator's (token or machine set) places work.
  await db.schema.alterTable("machines").addColumn("declared_country", "text").execute();
  await db
    .updateTable("machines")
    .set((eb) => ({ declared_country: eb.ref("country") }))
    .execute();
  await db.updateTable("machines").set({ country: null }).execute();
  // Power usage effectiveness of the machine's site: its energy × PUE is what the grid supplied.
  await db.schema
    .alterTable("machines")
    .addColumn("pue", "double precision", (c) => c.notNull().defaultTo(1))
    .execute();
  // The country the operator binds to every machine that joins with the token.
  await db.schema.alterTable("join_tokens").addColumn("country", "text").execute();
  // Where a workspace's (and a key's) work may run: region "eu" and/or comma-separated countries.
  for (const table of ["workspaces", "api_keys"]) {
    await db.schema.alterTable(table).addColumn("region", "text").execute();
    await db.schema
      .alterTable(table)
      .addColumn("countries", "text", (c) => c.notNull().defaultTo(""))
      .execute();
  }
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["workspaces", "api_keys"]) {
    await db.schema.alterTable(table).dropColumn("countries").execute();
    await db.schema.alterTable(table).dropColumn("region").execute();
  }
  await db.schema.alterTable("join_tokens").dropColumn("country").execute();
  await db.schema.alterTable("machines").dropColumn("pue").execute();
  await db
    .updateTable("machines")
    .set((eb) => ({ country: eb.ref("declared_country") }))
    .execute();
  await db.schema.alterTable("machines").dropColumn("declared_country").execute();
}
