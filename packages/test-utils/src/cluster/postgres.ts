import { randomBytes } from "node:crypto";
import { postgresUrl } from "../stores.ts";

/*
 * The test PostgreSQL listens on 127.0.0.1 of the namespace the tests run in, which no cluster host
 * can reach: a host's loopback is its own. Its Unix socket, though, is a file, and files are shared by
 * every namespace. So a gateway on a cluster host is given a URL over that socket: the gateway keeps
 * its own network namespace, and the test machine's network gains nothing (no veth to it, no routes,
 * no NAT).
 */

export interface ClusterDatabase {
  /** For a gateway inside the cluster: postgres://…@%2Fsocket-dir:PORT/NAME. */
  url: string;
  drop(): Promise<void>;
}

async function client(url: string) {
  const { default: pg } = await import("pg");
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

/** A fresh database on the test PostgreSQL, reachable from inside the cluster. */
export async function clusterDatabase(): Promise<ClusterDatabase> {
  const admin = postgresUrl();
  const name = `b9c_${process.pid}_${randomBytes(3).toString("hex")}`;
  const c = await client(admin);
  let socketDir: string;
  try {
    const dirs = (await c.query<{ d: string }>("SELECT current_setting('unix_socket_directories') AS d"))
      .rows[0]?.d;
    const dir = dirs
      ?.split(",")
      .map((d) => d.trim())
      .find((d) => d.startsWith("/"));
    if (!dir) {
      throw new Error(
        "the test PostgreSQL has no Unix socket (unix_socket_directories is empty); start it with scripts/postgres",
      );
    }
    socketDir = dir;
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  const url = new URL(admin);
  const inside = `postgres://${url.username}${url.password ? `:${url.password}` : ""}@${encodeURIComponent(socketDir)}:${url.port || "5432"}/${name}`;
  return {
    url: inside,
    async drop() {
      const d = await client(admin);
      try {
        await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await d.end();
      }
    },
  };
}
