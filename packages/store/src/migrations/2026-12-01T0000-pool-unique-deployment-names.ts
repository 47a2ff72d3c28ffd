import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // Machines serve a model under its deployment's name, so one name means one model in the pool: two
  // workspaces deploying the same name with different sources or placement rules would share replicas.
  await db.schema.createIndex("deployments_name_unique").on("deployments").column("name").unique().execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("deployments_name_unique").execute();
}
