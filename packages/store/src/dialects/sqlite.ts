import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { type SqliteDatabase, SqliteDialect, type SqliteStatement } from "kysely";

/**
 * Kysely's SQLite dialect over Node's built-in `node:sqlite`: nothing native to compile, so a fresh
 * machine needs no build tools. The adapter only reshapes the statement API Kysely expects.
 */
function adapt(db: DatabaseSync): SqliteDatabase {
  // Kysely prepares every query it runs; SQLite's compile costs more than most of our queries do,
  // so statements are kept by their SQL (a bounded set: queries are built from code).
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const cached = cache.get(sql);
      if (cached) return cached;
      const stmt = db.prepare(sql);
      const params = (p: ReadonlyArray<unknown>) => p.map(toSqlite);
      const adapted: SqliteStatement = {
        reader: stmt.columns().length > 0,
        all: (p) => stmt.all(...params(p)),
        run: (p) => {
          const r = stmt.run(...params(p));
          return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
        },
        // An iterator stays open across awaits: one of its own, never the shared statement.
        iterate: (p) => db.prepare(sql).iterate(...params(p)) as IterableIterator<unknown>,
      };
      if (cache.size >= MAX_STATEMENTS) cache.delete(cache.keys().next().value!);
      cache.set(sql, adapted);
      return adapted;
    },
  };
}

/** Prepared statements kept at most (the oldest goes first). */
const MAX_STATEMENTS = 500;

function toSqlite(v: unknown): SQLInputValue {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v instanceof Date) return v.getTime();
  return v as SQLInputValue;
}

export function sqliteDialect(path: string): SqliteDialect {
  if (path !== ":memory:") keepPrivate(path);
  const db = new DatabaseSync(path);
  // WAL lets readers go on while a heartbeat batch writes; a busy timeout rides out brief locks.
  // synchronous=NORMAL is safe in WAL mode (no corruption on power loss, at most the last commits
  // lost) and saves an fsync per commit, which a synchronous driver would pay on the event loop.
  db.exec(
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
  );
  return new SqliteDialect({ database: adapt(db) });
}

/**
 * The database holds every machine's and key's hash, usage and audit rows: only the gateway's user
 * may read it, like the admin key beside it. Its folder becomes 0700 and the file 0600 before SQLite
 * opens it (SQLite gives its -wal and -shm files the database's mode); a data dir made by an older
 * version is tightened here at start.
 */
function keepPrivate(path: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform === "win32") return;
  // A shared folder such as /tmp (sticky bit) is not ours to close; the file itself still is.
  if ((statSync(dir).mode & 0o1000) === 0) chmodSync(dir, 0o700);
  closeSync(openSync(path, "a", 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`])
    if (existsSync(file)) chmodSync(file, 0o600);
}
