import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "@beta9/http";
import { Store } from "@beta9/store";
import { BIN, DIALECTS, startGateway, tempDir } from "@beta9/test-utils";
import { sql } from "kysely";
import { Counter } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildGateway, type Gateway } from "../src/app.ts";
import type { AuditInput } from "../src/audit/audit.ts";
import { loadAuditKeys, SIGNING_KEY_FILE } from "../src/audit/keys.ts";
import { AuditLog, type AuditLogOptions } from "../src/audit/log.ts";
import { verifyChains } from "../src/audit/verify.ts";
import { gatewayConfig } from "../src/config.ts";
import { refuseAuditWrites } from "./audit-faults.ts";

const log = createLogger({ name: "test", level: "silent", pretty: false });
const event = (n: number, over: Partial<AuditInput> = {}): AuditInput => ({
  actor: { type: "key", id: "key_admin" },
  workspaceId: null,
  action: "pool.create",
  resource: `pool:p${n}`,
  outcome: "ok",
  requestId: `req-${n}`,
  ...over,
});

/** A replica's audit log on `store` with the keys of `dataDir` (made on first use). */
async function open(store: Store, dataDir: string, opts: Partial<AuditLogOptions> = {}): Promise<AuditLog> {
  const keys = await loadAuditKeys(
    dataDir,
    () => `gw_${Math.random().toString(16).slice(2, 10)}`,
    async (chain) => chain !== undefined && (await store.audit.head(chain)) !== undefined,
  );
  return AuditLog.open(store, keys, log, { retentionMs: 0, ...opts });
}

/** What the tamper tests need: the append-only triggers gone, as someone with the database's keys could do. */
async function dropTriggers(store: Store): Promise<void> {
  for (const t of ["audit_events_no_update", "audit_events_no_delete"])
    await sql
      .raw(`DROP TRIGGER ${t}${store.kind === "postgres" ? " ON audit_events" : ""}`)
      .execute(store.db);
}

for (const dialect of DIALECTS) {
  describe(`the audit chain on ${dialect.name}`, () => {
    const stores: Store[] = [];
    const logs: AuditLog[] = [];
    const fresh = async () => {
      const s = await Store.open(dialect.config());
      stores.push(s);
      return s;
    };
    const audit = async (
      store: Store,
      dataDir = tempDir("b9-audit-"),
      opts: Partial<AuditLogOptions> = {},
    ) => {
      const a = await open(store, dataDir, opts);
      logs.push(a);
      return a;
    };
    afterEach(async () => {
      for (const a of logs.splice(0)) await a.close();
      for (const s of stores.splice(0)) await s.close();
      vi.restoreAllMocks();
    });

    it("links each event to the one before, signs checkpoints, and verify finds the chain whole", async () => {
      const store = await fresh();
      const a = await audit(store, undefined, { checkpointEvery: 4 });
      for (let i = 1; i <= 10; i++) await a.record(event(i));
      const result = await verifyChains(store, a.publicKey);
      expect(result.ok).toBe(true);
      expect(result.chains).toEqual([
        expect.objectContaining({ chain: a.chain, events: 10, first_seq: 1, last_seq: 10, broken_at: null }),
      ]);
      // Every 4 events a checkpoint, signed by this data dir's key.
      expect(result.chains[0]?.last_checkpoint?.seq).toBe(8);
      expect((await store.audit.checkpoints()).map((c) => c.seq)).toEqual([4, 8]);
    });

    it("a clock that jumps back breaks nothing: the sequence orders the chain", async () => {
      const store = await fresh();
      const a = await audit(store);
      const now = Date.now();
      const clock = vi.spyOn(Date, "now");
      for (const [i, at] of [now, now - 3_600_000, now - 7_200_000].entries()) {
        clock.mockReturnValue(at);
        await a.record(event(i));
      }
      clock.mockRestore();
      const rows = await store.audit.range(a.chain, 1, 10);
      expect(rows.map((r) => Number(r.seq))).toEqual([1, 2, 3]);
      expect((await verifyChains(store)).ok).toBe(true);
    });

    it("an edited row: verify names its sequence number", async () => {
      const store = await fresh();
      const a = await audit(store);
      for (let i = 1; i <= 6; i++) await a.record(event(i));
      await dropTriggers(store);
      await store.db.updateTable("audit_events").set({ outcome: "refused" }).where("seq", "=", 4).execute();
      const result = await verifyChains(store, a.publicKey);
      expect(result.ok).toBe(false);
      expect(result.chains[0]).toMatchObject({ broken_at: 4, reason: expect.stringContaining("changed") });
    });

    it("a removed row and an inserted row: verify names the first broken sequence number", async () => {
      const store = await fresh();
      const a = await audit(store);
      for (let i = 1; i <= 6; i++) await a.record(event(i));
      await dropTriggers(store);
      await store.db.deleteFrom("audit_events").where("seq", "=", 3).execute();
      expect((await verifyChains(store)).chains[0]).toMatchObject({
        broken_at: 3,
        reason: expect.stringContaining("missing"),
      });

      const other = await fresh();
      const b = await audit(other);
      for (let i = 1; i <= 4; i++) await b.record(event(i));
      const [last] = await other.audit.range(b.chain, 4, 1);
      // A forged event after the head, well formed but with a made-up hash.
      await other.audit.append({
        ...last!,
        seq: 5,
        prev_hash: last!.hash,
        hash: "f".repeat(64),
        action: "key.revoke",
      });
      expect((await verifyChains(other)).chains[0]).toMatchObject({ broken_at: 5 });
    });

    it("retention writes a signed checkpoint, then prunes; the rest of the chain still verifies", async () => {
      const store = await fresh();
      const a = await audit(store, undefined, { retentionMs: 1_000 });
      const clock = vi.spyOn(Date, "now");
      const long = Date.now() - 10_000;
      clock.mockReturnValue(long);
      for (let i = 1; i <= 3; i++) await a.record(event(i));
      clock.mockRestore();
      for (let i = 4; i <= 5; i++) await a.record(event(i));
      expect(await a.prune()).toBe(3);
      expect((await store.audit.range(a.chain, 1, 10)).map((r) => Number(r.seq))).toEqual([4, 5]);
      expect((await store.audit.checkpoints()).map((c) => Number(c.seq))).toEqual([3]);
      const result = await verifyChains(store, a.publicKey);
      expect(result).toMatchObject({ ok: true, chains: [{ first_seq: 4, last_seq: 5, broken_at: null }] });
    });

    it("an HMAC of a secret is all that is kept: the secret is nowhere in the table", async () => {
      const store = await fresh();
      const a = await audit(store);
      const secret = "b9_supersecretvalue1234567890";
      await a.record(event(1, { details: { key: a.hmac(secret) } }));
      expect(a.hmac(secret)).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
      const dump = JSON.stringify(await store.db.selectFrom("audit_events").selectAll().execute());
      expect(dump).not.toContain(secret);
      expect(dump).toContain(a.hmac(secret));
    });

    it("enqueue batches and fails open: a batch that cannot be written is counted, and the caller never waits", async () => {
      const store = await fresh();
      const dropped = new Counter({ name: "dropped_test", help: "test", registers: [] });
      const a = await audit(store, undefined, { dropped });
      for (let i = 1; i <= 3; i++) a.enqueue(event(i, { action: "inference.request" }));
      await vi.waitFor(async () => expect(await store.audit.count()).toBe(3), { timeout: 30_000 });
      await refuseAuditWrites(store);
      for (let i = 4; i <= 5; i++) a.enqueue(event(i, { action: "inference.request" }));
      await vi.waitFor(async () => expect((await dropped.get()).values[0]?.value).toBe(2), {
        timeout: 30_000,
      });
      await expect(a.record(event(6))).rejects.toThrow(/disk full/);
      expect(await store.audit.count()).toBe(3);
      expect((await verifyChains(store)).ok).toBe(true);
    });

    it("an enqueued event keeps the time it happened, not the time its batch was written", async () => {
      const store = await fresh();
      const a = await audit(store);
      const happened = Date.now() - 90_000;
      const clock = vi.spyOn(Date, "now").mockReturnValue(happened);
      a.enqueue(event(1, { action: "auth.refused" }));
      clock.mockRestore();
      await vi.waitFor(async () => expect(await store.audit.count()).toBe(1), { timeout: 30_000 });
      const [row] = await store.audit.range(a.chain, 1, 1);
      expect(Number(row?.at)).toBe(happened);
      expect((await verifyChains(store)).ok).toBe(true);
    });

    it("signs a checkpoint on its timer when events came since the last one, and none when nothing did", async () => {
      const store = await fresh();
      const a = await audit(store, undefined, { checkpointEveryMs: 200 });
      a.start();
      await a.record(event(1));
      await a.record(event(2));
      await vi.waitFor(async () => expect((await store.audit.checkpoints()).map((c) => c.seq)).toEqual([2]), {
        timeout: 30_000,
      });
      // Several periods with no events: no new checkpoint over the same head.
      const periods = Date.now() + 1_000;
      await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(periods), { timeout: 5_000, interval: 100 });
      expect((await store.audit.checkpoints()).map((c) => c.seq)).toEqual([2]);
      await a.record(event(3));
      await vi.waitFor(
        async () => expect((await store.audit.checkpoints()).map((c) => c.seq)).toEqual([2, 3]),
        {
          timeout: 30_000,
        },
      );
      const result = await verifyChains(store, a.publicKey);
      expect(result.chains[0]?.last_checkpoint?.seq).toBe(3);
    });

    it("a missing or corrupt signing key after events exist stops the start with what to do", async () => {
      const store = await fresh();
      const dir = tempDir("b9-audit-");
      const a = await audit(store, dir);
      await a.record(event(1));
      const keyFile = join(dir, SIGNING_KEY_FILE);
      const pem = readFileSync(keyFile, "utf8");
      rmSync(keyFile);
      await expect(open(store, dir)).rejects.toThrow(/audit-signing\.key is missing: restore it/);
      writeFileSync(keyFile, "not a key\n", { mode: 0o600 });
      await expect(open(store, dir)).rejects.toThrow(
        /audit-signing\.key is corrupt .*restore it from your backup/,
      );
      writeFileSync(keyFile, pem, { mode: 0o600 });
      const again = await audit(store, dir);
      await again.record(event(2));
      expect(again.chain).toBe(a.chain);
      expect((await verifyChains(store, again.publicKey)).chains[0]).toMatchObject({
        last_seq: 2,
        broken_at: null,
      });
    });
  });
}

describe("two gateways on one PostgreSQL", () => {
  it("write their own chains at once, with no lock between them, and both verify", async () => {
    const config = DIALECTS[1].config();
    const one = await Store.open(config);
    const two = await Store.open(config);
    try {
      const a = await open(one, tempDir("b9-audit-"));
      const b = await open(two, tempDir("b9-audit-"));
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).record(event(i))));
      await a.close();
      await b.close();
      const result = await verifyChains(one, [a.publicKey, b.publicKey]);
      expect(result.ok).toBe(true);
      expect(result.chains.map((c) => c.events)).toEqual([20, 20]);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe("two gateways on one PostgreSQL, each with its own data dir", () => {
  it("record management changes made through both at once in two chains, and the log verifies whole", async () => {
    const config = DIALECTS[1].config();
    const gateways: Gateway[] = [];
    try {
      for (let i = 0; i < 2; i++)
        gateways.push(
          await buildGateway(gatewayConfig({ dataDir: tempDir("b9-gw-audit-"), port: 0 }), {
            store: await Store.open(config),
            log,
          }),
        );
      const [one, two] = gateways as [Gateway, Gateway];
      const admin = one.adminKey ?? two.adminKey;
      const create = (gw: Gateway, name: string) =>
        gw.app.inject({
          method: "POST",
          url: "/api/v1/pools",
          headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
          payload: JSON.stringify({ name }),
        });
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => create(i % 2 === 0 ? one : two, `pool-${i}`)),
      );
      expect(answers.map((a) => a.statusCode)).toEqual(Array(10).fill(201));
      expect(one.audit.audit.chain).not.toBe(two.audit.audit.chain);
      const result = await verifyChains(one.store, [one.audit.audit.publicKey, two.audit.audit.publicKey]);
      expect(result.ok).toBe(true);
      const pools = result.chains.filter((c) => c.events > 0);
      expect(pools.map((c) => c.chain).sort()).toEqual([one.audit.audit.chain, two.audit.audit.chain].sort());
      expect((await one.store.audit.list({ limit: 100, action: "pool.create" })).length).toBe(10);
    } finally {
      for (const gw of gateways) await gw.close();
    }
  });
});

describe("the real b9gateway with its audit signing key", () => {
  const start = (dataDir: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(
        process.execPath,
        [BIN.gateway, "--host", "127.0.0.1", "--port", "0", "--data-dir", dataDir],
        { timeout: 60_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });

  it("refuses to start when the key is missing or corrupt after events exist, saying what to do", async () => {
    const gw = await startGateway();
    expect((await gw.api("POST", "/api/v1/pools", { name: "lab" })).status).toBe(201);
    await gw.proc.stop();
    const keyFile = join(gw.dataDir, SIGNING_KEY_FILE);
    const pem = readFileSync(keyFile, "utf8");
    rmSync(keyFile);
    const missing = await start(gw.dataDir);
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain("audit-signing.key is missing: restore it");
    writeFileSync(keyFile, "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", {
      mode: 0o600,
    });
    const corrupt = await start(gw.dataDir);
    expect(corrupt.code).not.toBe(0);
    expect(corrupt.out).toContain("audit-signing.key is corrupt");
    writeFileSync(keyFile, pem, { mode: 0o600 });
    const again = await startGateway({ dataDir: gw.dataDir });
    try {
      expect((await again.api("GET", "/api/v1/audit?action=pool.create")).body).toMatchObject({
        events: [{ resource: "pool:lab" }],
      });
    } finally {
      await again.proc.stop();
    }
  });
});
