import type { Kysely } from "kysely";

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  // "low-carbon" or null: how placement ranks the machines that fit a deployment's replicas.
  await db.schema.alterTable("deployments").addColumn("prefer", "text").execute();
  // Why placement chose the machine, in a sentence (b9 model ps shows it).
  await db.schema.alterTable("replica_placements").addColumn("reason", "text").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("replica_placements").dropColumn("reason").execute();
  await db.schema.alterTable("deployments").dropColumn("prefer").execute();
}
