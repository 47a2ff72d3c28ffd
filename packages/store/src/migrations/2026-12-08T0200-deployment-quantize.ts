import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // A llama.cpp type ("Q8_0") machines convert the source to before serving it; null: served as fetched.
  await db.schema.alterTable("deployments").addColumn("quantize", "text").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("deployments").dropColumn("quantize").execute();
}
