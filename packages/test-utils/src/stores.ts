import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Store, type StoreConfig } from "@beta9/store";

/** The PostgreSQL that scripts/test starts. Tests that need it fail loudly rather than skip. */
export function postgresUrl(): string {
  const url = process.env.BETA9_TEST_DATABASE_URL;
  if (!url) {
    throw new Error(
      "BETA9_TEST_DATABASE_URL is not set: run the tests with `npm test` (it starts PostgreSQL), or start one with scripts/postgres and export its URL",
    );
  }
  return url;
}

export function freshSchemaName(): string {
  return `t_${randomBytes(6).toString("hex")}`;
}

/** Every dialect the store supports; store tests loop over this list. */
export const DIALECTS = [
  {
    name: "sqlite",
    config(): StoreConfig {
      return { kind: "sqlite", path: join(mkdtempSync(join(tmpdir(), "b9-store-")), "beta9.db") };
    },
  },
  {
    name: "postgres",
    config(): StoreConfig {
      return { kind: "postgres", url: postgresUrl(), schema: freshSchemaName(), maxConnections: 4 };
    },
  },
] as const;

export async function openTestStore(dialect: (typeof DIALECTS)[number]): Promise<Store> {
  return Store.open(dialect.config());
}
