import type { AuditExportLine } from "@beta9/protocol";
import { DIALECTS } from "@beta9/test-utils";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyExport } from "../src/audit/verify.ts";
import { type Harness, harness } from "./harness.ts";

async function exported(h: Harness, query = ""): Promise<{ text: string; lines: AuditExportLine[] }> {
  const res = await h.gw.app.inject({
    method: "GET",
    url: `/api/v1/audit/export${query}`,
    headers: { authorization: `Bearer ${h.admin}` },
  });
  expect(res.statusCode).toBe(200);
  expect(res.headers["content-type"]).toContain("application/x-ndjson");
  return {
    text: res.body,
    lines: res.body
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as AuditExportLine),
  };
}

for (const dialect of DIALECTS) {
  describe(`reading the audit log on ${dialect.name}`, () => {
    let h: Harness;
    let secrets: string[];
    let teamKey: string;
    beforeAll(async () => {
      h = await harness(dialect);
      await h.call("POST", "/api/v1/workspaces", { body: { name: "acme" } });
      const key = await h.call("POST", "/api/v1/keys", {
        body: { name: "acme-admin", scopes: ["admin"], workspace: "acme" },
      });
      teamKey = key.body.key;
      const token = await h.call("POST", "/api/v1/tokens", {});
      await h.call("POST", "/api/v1/pools", { body: { name: "lab" } });
      await h.call("POST", "/api/v1/workspaces/acme/limits", { body: { rpm_limit: 60 } });
      secrets = [h.admin, teamKey, token.body.token];
    });
    afterAll(async () => {
      await h.gw.close();
    });

    it("the operator sees every event, filtered; a workspace's admin only its own", async () => {
      const all = await h.call("GET", "/api/v1/audit");
      expect(all.body.events.map((e: { action: string }) => e.action)).toEqual([
        "workspace.create",
        "key.create",
        "token.create",
        "pool.create",
        "workspace.limits",
      ]);
      expect(all.body.events[0]).toMatchObject({
        seq: 1,
        actor: { type: "key" },
        outcome: "ok",
        workspace: "acme",
      });
      const pools = await h.call("GET", "/api/v1/audit?action=pool.create");
      expect(pools.body.events).toEqual([expect.objectContaining({ resource: "pool:lab" })]);
      const byResource = await h.call("GET", "/api/v1/audit?resource=workspace:acme");
      expect(byResource.body.events).toHaveLength(2);
      const acme = await h.call("GET", "/api/v1/audit?workspace=acme");
      expect(acme.body.events.map((e: { action: string }) => e.action)).toEqual([
        "workspace.create",
        "key.create",
        "workspace.limits",
      ]);
      const own = await h.call("GET", "/api/v1/audit", { key: teamKey });
      expect(own.status).toBe(200);
      expect(own.body.events.every((e: { workspace: string }) => e.workspace === "acme")).toBe(true);
      const other = await h.call("GET", "/api/v1/audit?workspace=default", { key: teamKey });
      expect(other).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
      const future = await h.call(
        "GET",
        `/api/v1/audit?since=${new Date(Date.now() + 3_600_000).toISOString()}`,
      );
      expect(future.body.events).toEqual([]);
    });

    it("reads on from a cursor, and follow waits for the next event", async () => {
      const first = await h.call("GET", "/api/v1/audit?limit=2");
      expect(first.body.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2]);
      const rest = await h.call("GET", `/api/v1/audit?after=${first.body.next}`);
      expect(rest.body.events.map((e: { seq: number }) => e.seq)).toEqual([3, 4, 5]);
      const waiting = h.call("GET", `/api/v1/audit?follow=true&after=${rest.body.next}`);
      await h.call("POST", "/api/v1/pools", { body: { name: "later" } });
      const followed = await waiting;
      // Security events (a refused call earlier) may come too; the change is there.
      expect(followed.body.events.map((e: { resource: string }) => e.resource)).toContain("pool:later");
      const bad = await h.call("GET", "/api/v1/audit?after=nonsense");
      expect(bad).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
    });

    it("exports JSONL with checkpoints and the public key, verifiable offline, with no secret in clear", async () => {
      await h.gw.audit.audit.checkpoint();
      const { text, lines } = await exported(h);
      expect(lines[0]).toMatchObject({ type: "export", since: null });
      expect(lines.filter((l) => l.type === "public_key")).toHaveLength(1);
      const count = await h.gw.store.audit.count();
      expect(count).toBeGreaterThanOrEqual(6);
      expect(lines.filter((l) => l.type === "event")).toHaveLength(count);
      expect(lines.filter((l) => l.type === "checkpoint")).toHaveLength(1);
      for (const s of secrets) expect(text).not.toContain(s);
      expect(await verifyExport(lines)).toMatchObject({
        ok: true,
        chains: [{ events: count, broken_at: null }],
      });
      // One event edited in the file: offline verify names it.
      const edited = lines.map((l) =>
        l.type === "event" && l.seq === 3 ? { ...l, resource: "pool:forged" } : l,
      );
      expect((await verifyExport(edited)).chains[0]).toMatchObject({ broken_at: 3 });
      const removed = lines.filter((l) => !(l.type === "event" && l.seq === 2));
      expect((await verifyExport(removed)).chains[0]).toMatchObject({ broken_at: 2 });
    });

    it("an export of a period with no events is a valid export that says so", async () => {
      const { lines } = await exported(h, "?since=2001-01-01T00:00:00Z&until=2001-02-01T00:00:00Z");
      expect(lines.map((l) => l.type)).toEqual(["export", "public_key"]);
      expect(await verifyExport(lines)).toEqual({ ok: true, chains: [] });
    });

    it("verify on the gateway finds the log whole, then names the row edited behind its back", async () => {
      const whole = await h.call("GET", "/api/v1/audit/verify");
      const count = await h.gw.store.audit.count();
      expect(whole.body).toMatchObject({ ok: true, chains: [{ events: count, broken_at: null }] });
      expect((await h.call("GET", "/api/v1/audit/verify", { key: teamKey })).status).toBe(403);
      const pg = h.gw.store.kind === "postgres";
      await sql
        .raw(`DROP TRIGGER audit_events_no_update${pg ? " ON audit_events" : ""}`)
        .execute(h.gw.store.db);
      await h.gw.store.db
        .updateTable("audit_events")
        .set({ resource: "pool:other" })
        .where("seq", "=", 4)
        .execute();
      const broken = await h.call("GET", "/api/v1/audit/verify");
      expect(broken.body).toMatchObject({ ok: false, chains: [{ broken_at: 4 }] });
    });
  });
}
