import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { GatewayProc } from "./processes.ts";

/**
 * The SQLite file of a running gateway, opened beside it (WAL mode lets a reader in; a writer waits
 * up to 10 s for the gateway's lock), for `use`, then closed: what a test reads of the store, or what
 * someone with the file could do behind the gateway's back.
 */
export function withGatewayDb<T>(
  gw: Pick<GatewayProc, "dataDir">,
  use: (db: DatabaseSync) => T,
  opts: { readOnly?: boolean } = {},
): T {
  const db = new DatabaseSync(join(gw.dataDir, "beta9.db"), {
    readOnly: opts.readOnly ?? true,
    timeout: 10_000,
  });
  try {
    return use(db);
  } finally {
    db.close();
  }
}
