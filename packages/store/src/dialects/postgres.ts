import { CompiledQuery, PostgresDialect } from "kysely";
import pg from "pg";

const INT8_OID = 20;

export interface PostgresOptions {
  /** Run everything in this schema (created if missing); tests use one schema each. */
  schema?: string;
  maxConnections?: number;
}

export function postgresDialect(url: string, options: PostgresOptions = {}): PostgresDialect {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    // Millisecond timestamps are stored as bigint; they fit a JS number exactly.
    types: {
      getTypeParser: (oid: number, format?: "text" | "binary") =>
        oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format ?? "text"),
    } as pg.CustomTypesConfig,
  });
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]*$/.test(schema)) {
    throw new Error(`invalid PostgreSQL schema name: ${schema}`);
  }
  return new PostgresDialect({
    pool,
    onCreateConnection: schema
      ? async (conn) => {
          await conn.executeQuery(CompiledQuery.raw(`SET search_path TO "${schema}"`));
        }
      : undefined,
  });
}
