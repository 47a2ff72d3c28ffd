/**
 * Diagnostic for the heartbeat bench: what one MachineRegistry.flush() costs the gateway's event loop.
 * It calls the real store (SQLite file in a temp dir, as the gateway's default) with a batch shaped
 * like the registry's: one entry per machine, each with the millisecond its last beat arrived, beats
 * spread evenly over the interval. Compared with the same batch in one transaction, and with one time
 * for the whole batch.
 *
 *   npx node bench/heartbeats/flush-cost.ts [--machines 10000] [--interval 5s]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { parseDuration } from "@beta9/protocol";
import { type Machine, Store } from "@beta9/store";
import { sql } from "kysely";

const { values } = parseArgs({
  options: { machines: { type: "string", default: "10000" }, interval: { type: "string", default: "5s" } },
});
const n = Number(values.machines);
const intervalMs = parseDuration(values.interval);

/** Runs fn and reports its wall time and the longest stretch the event loop could not turn. */
async function timed(label: string, fn: () => Promise<void>): Promise<void> {
  let last = performance.now();
  let maxGap = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  maxGap = 0;
  last = performance.now();
  const t = performance.now();
  await fn();
  const wall = performance.now() - t;
  maxGap = Math.max(maxGap, performance.now() - last);
  clearInterval(probe);
  process.stdout.write(
    `  ${label.padEnd(58)} ${wall.toFixed(1).padStart(8)} ms, event loop blocked up to ${maxGap.toFixed(1)} ms\n`,
  );
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b9-bench-flush-"));
  const store = await Store.open({ kind: "sqlite", path: path.join(dir, "beta9.db") });
  try {
    const now = Date.now();
    await store.pools.insert({ name: "external", description: "", created_at: now });
    const ids = Array.from({ length: n }, (_, i) => `bench-${String(i).padStart(5, "0")}`);
    await store.transaction(async (tx) => {
      for (const id of ids) {
        const row: Machine = {
          id,
          name: id,
          pool: "external",
          hostname: `${id}.bench.invalid`,
          agent_version: "bench",
          hardware: "{}",
          credential_hash: id.padEnd(64, "0"),
          protocol: "channel",
          cordoned_at: null,
          draining_at: null,
          joined_at: now,
          last_heartbeat_at: null,
          join_token_id: null,
          country: null,
          declared_country: null,
          pue: 1,
          flags_changed_at: 0,
        };
        await tx.machines.insert(row);
      }
    });
    const sync = await sql<{ synchronous: number }>`PRAGMA synchronous`.execute(store.db);
    const mode = await sql<{ journal_mode: string }>`PRAGMA journal_mode`.execute(store.db);
    // The registry's #dirty map: machine id → Date.now() of its last beat; beats spread over the interval.
    const spread = (base: number) =>
      new Map(ids.map((id, i) => [id, base + Math.floor((i * intervalMs) / n)]));
    const buckets = new Set(spread(0).values()).size;
    process.stdout.write(
      `recordHeartbeats on SQLite (${path.join(dir, "beta9.db")}; journal_mode=${mode.rows[0]?.journal_mode}, ` +
        `synchronous=${sync.rows[0]?.synchronous}), ${n} machines, beats spread over ${intervalMs} ms ` +
        `→ ${buckets} distinct times\n`,
    );
    for (let round = 0; round < 2; round++) {
      const base = Date.now() + round * intervalMs;
      await timed("as MachineRegistry.flush() calls it (ms times)", () =>
        store.machines.recordHeartbeats(spread(base)),
      );
      await timed("same batch inside one store.transaction()", () =>
        store.transaction((tx) => tx.machines.recordHeartbeats(spread(base + 1))),
      );
      const one = new Map(ids.map((id) => [id, base + 2]));
      await timed("one time for the whole batch (flush time)", () => store.machines.recordHeartbeats(one));
    }
  } finally {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`flush-cost: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
