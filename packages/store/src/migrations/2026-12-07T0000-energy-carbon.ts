import type { Kysely } from "kysely";

/** The footprint of an answer (usage) or a job's run (job_usage): all null when nothing was measured. */
const COLUMNS = [
  ["energy_wh", "double precision"],
  ["energy_method", "text"],
  ["energy_confidence", "text"],
  ["pue", "double precision"],
  ["grid_zone", "text"],
  ["grid_intensity", "double precision"],
  ["intensity_source", "text"],
  ["intensity_year", "integer"],
  ["intensity_confidence", "text"],
  ["co2e_g", "double precision"],
  ["carbon_basis", "text"],
] as const;

// biome-ignore lint/suspicious/noExplicitAny: migrations run against whatever the schema was then.
export async function up(db: Kysely<any>): Promise<void> {
  for (const table of ["usage", "job_usage"]) {
    // One column per statement: SQLite's ALTER TABLE adds one at a time.
    for (const [name, type] of COLUMNS) await db.schema.alterTable(table).addColumn(name, type).execute();
  }
}

// biome-ignore lint/suspicious/noExplicitAny: see up().
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["usage", "job_usage"]) {
    for (const [name] of COLUMNS) await db.schema.alterTable(table).dropColumn(name).execute();
  }
}
