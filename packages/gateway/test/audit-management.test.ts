import { DIALECTS } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANAGEMENT_ACTIONS, managementKeys, NOT_MANAGEMENT } from "../src/audit/management.ts";
import { verifyChains } from "../src/audit/verify.ts";
import { refuseAuditWrites } from "./audit-faults.ts";
import { type Harness, harness, joinBody } from "./harness.ts";

/** Every event so far, in order. */
async function events(h: Harness) {
  return h.gw.store.audit.list({ limit: 10_000 });
}

describe("the management routes' audit", () => {
  it("every mutating route of the gateway is audited or said to be no management change: a new route without an entry fails here", async () => {
    const h = await harness(DIALECTS[0]);
    try {
      const mutating = h.gw.audit.routes.flatMap((r) => {
        const [method, url] = r.split(" ") as [string, string];
        return managementKeys({ method: method as "POST", url });
      });
      expect(mutating.length).toBeGreaterThan(20);
      const unaudited = mutating.filter((k) => !MANAGEMENT_ACTIONS[k] && !NOT_MANAGEMENT.has(k));
      expect(unaudited).toEqual([]);
      // And no entry names a route that is gone.
      expect(
        [...Object.keys(MANAGEMENT_ACTIONS), ...NOT_MANAGEMENT].filter((k) => !mutating.includes(k)),
      ).toEqual([]);
    } finally {
      await h.gw.close();
    }
  });
});

for (const dialect of DIALECTS) {
  describe(`management changes on ${dialect.name}`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(dialect);
    });
    afterAll(async () => {
      await h.gw.close();
    });

    it("write exactly one event each, with actor, workspace, action, resource and outcome", async () => {
      const before = (await events(h)).length;
      const admin = (await h.call("GET", "/api/v1/keys")).body.keys[0].id as string;
      const seen: string[] = [];
      const call = async (method: string, url: string, body?: unknown, key?: string) => {
        const n = (await events(h)).length;
        const res = await h.call(method, url, { body, ...(key ? { key } : {}) });
        const all = await events(h);
        expect(all.length, `${method} ${url} wrote ${all.length - n} events`).toBe(n + 1);
        const e = all.at(-1)!;
        seen.push(
          `${e.action} ${e.resource} ${e.outcome} ${e.workspace ?? "-"} ${e.actor_type}:${e.actor_id === admin ? "admin" : e.actor_id}`,
        );
        return res;
      };
      await call("POST", "/api/v1/pools", { name: "lab" });
      const token = await call("POST", "/api/v1/tokens", { pool: "lab" });
      await call("POST", "/api/v1/workspaces", { name: "acme" });
      const key = await call("POST", "/api/v1/keys", {
        name: "ci",
        scopes: ["inference"],
        workspace: "acme",
      });
      await call("POST", `/api/v1/keys/${key.body.id}/limits`, { rpm_limit: 10 });
      // The acme key may not make keys: refused, and recorded as such.
      await call("POST", "/api/v1/keys", { name: "x", scopes: ["admin"] }, key.body.key);
      const join = await h.call("POST", "/api/v1/machines/join", {
        body: joinBody(token.body.token, "m1"),
        key: null,
      });
      expect(join.status).toBe(201);
      for (const verb of ["cordon", "uncordon", "drain"]) await call("POST", `/api/v1/machines/m1/${verb}`);
      await call("PATCH", "/api/v1/machines/m1", { country: "FR" });
      await call("DELETE", "/api/v1/machines/m1");
      await call("DELETE", "/api/v1/machines/nope");
      await call("DELETE", `/api/v1/tokens/${token.body.id}`);
      await call("POST", "/api/v1/workspaces/acme/limits", { rpm_limit: 100 });
      await call("DELETE", `/api/v1/keys/${key.body.id}`);
      await call("DELETE", "/api/v1/workspaces/acme");
      expect(seen).toEqual([
        "pool.create pool:lab ok default key:admin",
        `token.create token:${token.body.id} ok default key:admin`,
        "workspace.create workspace:acme ok acme key:admin",
        `key.create key:${key.body.id} ok acme key:admin`,
        `key.limits key:${key.body.id} ok default key:admin`,
        `key.create null refused acme key:${key.body.id}`,
        "machine.cordon machine:m1 ok default key:admin",
        "machine.uncordon machine:m1 ok default key:admin",
        "machine.drain machine:m1 ok default key:admin",
        "machine.set machine:m1 ok default key:admin",
        "machine.remove machine:m1 ok default key:admin",
        "machine.remove machine:nope refused default key:admin",
        `token.revoke token:${token.body.id} ok default key:admin`,
        "workspace.limits workspace:acme ok acme key:admin",
        `key.revoke key:${key.body.id} ok default key:admin`,
        "workspace.remove workspace:acme ok acme key:admin",
      ]);
      const all = await events(h);
      // And the machine's join, which its route records (machine.join, auth/security-events.ts).
      expect(all.length - before).toBe(seen.length + 1);
      expect(all.filter((e) => e.action === "machine.join" && e.resource === "machine:m1")).toHaveLength(1);
      expect(all.at(-1)?.request_id).toBeTruthy();
      expect((await verifyChains(h.gw.store, h.gw.audit.audit.publicKey)).ok).toBe(true);

      // No secret shown once (API key, join token, machine credential) is anywhere in the audit rows.
      const secrets = [
        key.body.key,
        token.body.token,
        ...JSON.stringify(join.body).match(/b9m_[A-Za-z0-9_-]+/g)!,
      ];
      expect(secrets.every((s) => typeof s === "string" && s.length > 10)).toBe(true);
      const dump = JSON.stringify(await h.gw.store.db.selectFrom("audit_events").selectAll().execute());
      for (const s of secrets) expect(dump).not.toContain(s);
    });

    it("a failing audit write (a full disk) refuses the change with 503, and the change is not made", async () => {
      const n = (await events(h)).length;
      await refuseAuditWrites(h.gw.store);
      const pool = await h.call("POST", "/api/v1/pools", { body: { name: "never" } });
      expect(pool).toMatchObject({
        status: 503,
        body: { error: { code: "unavailable", message: expect.stringContaining("audit log") } },
      });
      const key = await h.call("POST", "/api/v1/keys", { body: { name: "never", scopes: ["read"] } });
      expect(key.status).toBe(503);
      const pools = (await h.call("GET", "/api/v1/pools")).body.pools.map((p: { name: string }) => p.name);
      expect(pools).not.toContain("never");
      const keys = (await h.call("GET", "/api/v1/keys")).body.keys.map((k: { name: string }) => k.name);
      expect(keys).not.toContain("never");
      expect((await events(h)).length).toBe(n);
    });
  });
}
