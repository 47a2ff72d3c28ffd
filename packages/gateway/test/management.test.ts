import { DIALECTS } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Harness, harness, joinBody } from "./harness.ts";

for (const dialect of DIALECTS) {
  describe(`management API on ${dialect.name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await harness(dialect);
    });
    afterEach(async () => {
      await h.gw.close();
    });

    it("bootstraps workspace default, pool external and a working admin key", async () => {
      const pools = await h.call("GET", "/api/v1/pools");
      expect(pools.status).toBe(200);
      expect(pools.body.pools.map((p: { name: string }) => p.name)).toEqual(["external"]);
      const keys = await h.call("GET", "/api/v1/keys");
      expect(keys.body.keys).toMatchObject([
        { name: "admin", workspace: "default", scopes: ["admin"], revoked: false },
      ]);
      expect(JSON.stringify(keys.body)).not.toContain(h.admin);
    });

    it("creates, lists and revokes join tokens; the secret is shown once", async () => {
      const created = await h.call("POST", "/api/v1/tokens", {
        body: { pool: "external", ttl_seconds: 60, uses: 3 },
      });
      expect(created.status).toBe(201);
      expect(created.body.token).toMatch(/^b9j_/);
      expect(created.body).toMatchObject({ pool: "external", uses_total: 3, uses_left: 3, revoked: false });
      const listed = await h.call("GET", "/api/v1/tokens");
      expect(listed.body.tokens).toHaveLength(1);
      expect(listed.body.tokens[0].token).toBeUndefined();
      const revoked = await h.call("DELETE", `/api/v1/tokens/${created.body.id}`);
      expect(revoked.body.revoked).toBe(true);
      const join = await h.call("POST", "/api/v1/machines/join", {
        body: joinBody(created.body.token, "m1"),
        key: null,
      });
      expect(join).toMatchObject({ status: 401, body: { error: { code: "join_token_revoked" } } });
    });

    it("refuses a token for an unknown pool, then accepts it once the pool exists", async () => {
      const bad = await h.call("POST", "/api/v1/tokens", { body: { pool: "gpu-lab" } });
      expect(bad).toMatchObject({ status: 404, body: { error: { code: "pool_unknown" } } });
      expect((await h.call("POST", "/api/v1/pools", { body: { name: "gpu-lab" } })).status).toBe(201);
      expect((await h.call("POST", "/api/v1/pools", { body: { name: "gpu-lab" } })).status).toBe(409);
      expect((await h.call("POST", "/api/v1/tokens", { body: { pool: "gpu-lab" } })).status).toBe(201);
    });

    it("says why a join token is refused: unknown, expired, used up", async () => {
      const unknown = await h.call("POST", "/api/v1/machines/join", {
        body: joinBody("b9j_nope", "m1"),
        key: null,
      });
      expect(unknown.body.error.code).toBe("join_token_invalid");
      const t = (await h.call("POST", "/api/v1/tokens", { body: { uses: 1, ttl_seconds: 1 } })).body.token;
      expect(
        (await h.call("POST", "/api/v1/machines/join", { body: joinBody(t, "m1"), key: null })).status,
      ).toBe(201);
      const again = await h.call("POST", "/api/v1/machines/join", { body: joinBody(t, "m2"), key: null });
      expect(again).toMatchObject({ status: 401, body: { error: { code: "join_token_used_up" } } });
      expect(again.body.error.message).toMatch(/b9 token create/);
      await new Promise((r) => setTimeout(r, 1100));
      const t2 = (await h.call("POST", "/api/v1/tokens", { body: { uses: 5, ttl_seconds: 1 } })).body.token;
      await new Promise((r) => setTimeout(r, 1100));
      const expired = await h.call("POST", "/api/v1/machines/join", { body: joinBody(t2, "m3"), key: null });
      expect(expired.body.error.code).toBe("join_token_expired");
      expect(await h.gw.store.machines.get("m3")).toBeUndefined();
    });

    it("lets exactly one of two racing agents join with a one-use token", async () => {
      const t = (await h.call("POST", "/api/v1/tokens", { body: { uses: 1 } })).body.token;
      const results = await Promise.all(
        ["race-a", "race-b", "race-c"].map((id) =>
          h.call("POST", "/api/v1/machines/join", { body: joinBody(t, id), key: null }),
        ),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, 401, 401]);
      expect((await h.gw.store.machines.list()).length).toBe(1);
    });

    it("API keys: scopes are enforced, revoked keys stop working, secrets are never listed", async () => {
      const read = await h.call("POST", "/api/v1/keys", { body: { name: "dash", scopes: ["read"] } });
      expect(read.status).toBe(201);
      expect(read.body.key).toMatch(/^b9_/);
      const readKey = read.body.key as string;
      expect((await h.call("GET", "/api/v1/machines", { key: readKey })).status).toBe(200);
      const denied = await h.call("POST", "/api/v1/tokens", { body: {}, key: readKey });
      expect(denied).toMatchObject({ status: 403, body: { error: { code: "scope_missing" } } });
      const infer = (await h.call("POST", "/api/v1/keys", { body: { name: "app", scopes: ["inference"] } }))
        .body.key;
      expect((await h.call("GET", "/api/v1/machines", { key: infer })).status).toBe(403);
      await h.call("DELETE", `/api/v1/keys/${read.body.id}`);
      const revoked = await h.call("GET", "/api/v1/machines", { key: readKey });
      expect(revoked).toMatchObject({ status: 401, body: { error: { code: "api_key_revoked" } } });
      expect(await h.call("GET", "/api/v1/machines", { key: null })).toMatchObject({
        status: 401,
        body: { error: { code: "unauthorized" } },
      });
      expect(await h.call("GET", "/api/v1/machines", { key: "b9_forged" })).toMatchObject({
        status: 401,
        body: { error: { code: "api_key_invalid" } },
      });
      const stored = await h.gw.store.keys.list();
      expect(JSON.stringify(stored)).not.toContain(readKey);
    });

    it("validates every input: bad JSON, wrong types, missing and extra fields, oversized bodies", async () => {
      const badJson = await h.call("POST", "/api/v1/tokens", { raw: "{not json" });
      expect(badJson).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      const wrongType = await h.call("POST", "/api/v1/tokens", { body: { uses: "many" } });
      expect(wrongType).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(wrongType.body.error.message).toMatch(/uses/);
      const extra = await h.call("POST", "/api/v1/keys", {
        body: { name: "x", scopes: ["admin"], sneaky: true },
      });
      expect(extra.status).toBe(400);
      const missing = await h.call("POST", "/api/v1/machines/join", { body: { token: "b9j_x" }, key: null });
      expect(missing.status).toBe(400);
      const badScope = await h.call("POST", "/api/v1/keys", { body: { name: "x", scopes: ["root"] } });
      expect(badScope.status).toBe(400);
      const badName = await h.call("POST", "/api/v1/pools", { body: { name: "../etc" } });
      expect(badName.status).toBe(400);
      const huge = await h.call("POST", "/api/v1/pools", {
        raw: JSON.stringify({ name: "a", description: "x".repeat(2 * 1024 * 1024) }),
      });
      expect(huge).toMatchObject({ status: 413, body: { error: { code: "payload_too_large" } } });
      const unknownRoute = await h.call("GET", "/api/v1/nothing");
      expect(unknownRoute).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      expect((await h.gw.store.pools.list()).length).toBe(1);
    });

    it("cordons, drains, uncordons and removes machines", async () => {
      const t = (await h.call("POST", "/api/v1/tokens", { body: {} })).body.token;
      await h.call("POST", "/api/v1/machines/join", { body: joinBody(t, "m1"), key: null });
      expect((await h.call("GET", "/api/v1/machines/m1")).body.status).toBe("OFFLINE"); // joined, never connected
      h.gw.registry.attach("m1", { close() {} });
      h.gw.registry.heartbeat("m1", { usage: null, runningJobs: 0 });
      expect((await h.call("GET", "/api/v1/machines/m1")).body.status).toBe("READY");
      expect((await h.call("POST", "/api/v1/machines/m1/cordon")).body.status).toBe("CORDONED");
      expect((await h.call("POST", "/api/v1/machines/m1/drain")).body).toMatchObject({
        status: "DRAINING",
        cordoned: true,
        draining: true,
      });
      expect((await h.call("POST", "/api/v1/machines/m1/uncordon")).body.cordoned).toBe(false);
      expect((await h.gw.store.machines.get("m1"))?.cordoned_at).toBeNull();
      expect((await h.call("DELETE", "/api/v1/machines/m1")).status).toBe(204);
      expect((await h.call("GET", "/api/v1/machines/m1")).status).toBe(404);
      expect((await h.call("POST", "/api/v1/machines/m1/cordon")).status).toBe(404);
    });

    it("takes a machine's country from its join token, keeps what it declares only as declared, and refuses a contradiction", async () => {
      const token = async (country?: string) =>
        (await h.call("POST", "/api/v1/tokens", { body: { uses: 4, ...(country ? { country } : {}) } })).body
          .token as string;
      const de = await token("DE");
      const bare = await token();
      const join = (t: string, id: string, country?: string, credential?: string) =>
        h.call("POST", "/api/v1/machines/join", {
          body: {
            ...joinBody(t, id),
            ...(country === undefined ? {} : { country }),
            ...(credential === undefined ? {} : { credential }),
          },
          key: null,
        });
      const first = await join(de, "de-box", "DE");
      expect(first.status).toBe(201);
      expect((await join(de, "quiet-de")).status).toBe(201);
      // Declared without a country from the operator: shown as declared, never the machine's country.
      expect((await join(bare, "says-fr", "FR")).status).toBe(201);
      expect((await h.call("GET", "/api/v1/machines/de-box")).body).toMatchObject({
        country: "DE",
        declared_country: "DE",
        pue: 1,
      });
      expect((await h.call("GET", "/api/v1/machines/quiet-de")).body.country).toBe("DE");
      expect((await h.call("GET", "/api/v1/machines/says-fr")).body).toMatchObject({
        country: null,
        declared_country: "FR",
      });
      // A machine saying it is elsewhere than its token binds is refused, and nothing is recorded.
      expect(await join(de, "liar", "US")).toMatchObject({
        status: 403,
        body: {
          error: {
            code: "country_mismatch",
            message: expect.stringMatching(/for machines in DE.*says it is in US/),
          },
        },
      });
      expect(await h.gw.store.machines.get("liar")).toBeUndefined();
      // Joining again under its id takes the machine's credential (a join token alone is refused).
      expect(await join(de, "de-box")).toMatchObject({
        status: 409,
        body: { error: { code: "machine_id_taken" } },
      });
      expect((await join(bare, "de-box", undefined, first.body.credential)).status).toBe(201);
      expect((await h.gw.store.machines.get("de-box"))?.country).toBe("DE");
      for (const country of ["de", "DEU", "D1"]) {
        expect(await join(bare, "bad", country)).toMatchObject({
          status: 400,
          body: { error: { code: "bad_request" } },
        });
      }
      for (const country of ["XX", "UK"]) {
        expect(await join(bare, "bad", country)).toMatchObject({
          status: 400,
          body: { error: { code: "invalid_country" } },
        });
      }
      expect(await h.gw.store.machines.get("bad")).toBeUndefined();
    });

    it("lets only the operator set a machine's country and PUE, and refuses a PUE out of range or a code ISO never assigned", async () => {
      const t = (await h.call("POST", "/api/v1/tokens", { body: {} })).body.token;
      expect(
        (
          await h.call("POST", "/api/v1/machines/join", {
            body: { ...joinBody(t, "set-me"), country: "PL" },
            key: null,
          })
        ).status,
      ).toBe(201);
      const set = (body: unknown, key?: string) =>
        h.call("PATCH", "/api/v1/machines/set-me", { body, ...(key ? { key } : {}) });
      expect(await set({ country: "FR", pue: 1.4 })).toMatchObject({
        status: 200,
        body: { country: "FR", declared_country: "PL", pue: 1.4 },
      });
      expect(await h.gw.store.machines.get("set-me")).toMatchObject({ country: "FR", pue: 1.4 });
      for (const pue of [0.9, 3.5]) {
        expect(await set({ pue })).toMatchObject({
          status: 400,
          body: { error: { code: "bad_request", message: expect.stringMatching(/PUE is between 1.0/) } },
        });
      }
      expect(await set({ country: "UK" })).toMatchObject({
        status: 400,
        body: {
          error: { code: "invalid_country", message: expect.stringMatching(/the United Kingdom is GB/) },
        },
      });
      expect((await set({ country: null })).body.country).toBeNull();
      const team = await h.call("POST", "/api/v1/workspaces", { body: { name: "tenants" } });
      expect(team.status).toBe(201);
      const teamKey = (
        await h.call("POST", "/api/v1/keys", { body: { name: "t", scopes: ["admin"], workspace: "tenants" } })
      ).body.key as string;
      expect(await set({ country: "DE" }, teamKey)).toMatchObject({
        status: 403,
        body: { error: { code: "forbidden" } },
      });
      expect((await h.call("PATCH", "/api/v1/machines/nope", { body: { pue: 1.1 } })).status).toBe(404);
    });

    it("pages through machines in join order", async () => {
      const t = (await h.call("POST", "/api/v1/tokens", { body: { uses: 7 } })).body.token;
      for (const id of ["p1", "p2", "p3", "p4", "p5"]) {
        expect(
          (await h.call("POST", "/api/v1/machines/join", { body: joinBody(t, id), key: null })).status,
        ).toBe(201);
      }
      const first = await h.call("GET", "/api/v1/machines?limit=2");
      expect(first.body.machines.map((m: { id: string }) => m.id)).toEqual(["p1", "p2"]);
      expect(first.body.next).toBe("p2");
      const second = await h.call("GET", `/api/v1/machines?limit=2&after=${first.body.next}`);
      expect(second.body.machines.map((m: { id: string }) => m.id)).toEqual(["p3", "p4"]);
      const last = await h.call("GET", `/api/v1/machines?limit=2&after=${second.body.next}`);
      expect(last.body).toMatchObject({ machines: [{ id: "p5" }], next: null });
      expect((await h.call("GET", "/api/v1/machines")).body.machines).toHaveLength(5);
      expect((await h.call("GET", "/api/v1/machines?limit=0")).status).toBe(400);
      expect((await h.call("GET", "/api/v1/machines?limit=abc")).status).toBe(400);
    });

    it("serves /health and Prometheus /metrics", async () => {
      expect((await h.call("GET", "/health", { key: null })).body).toMatchObject({ status: "ok" });
      const res = await h.gw.app.inject({
        method: "GET",
        url: "/metrics",
        headers: { authorization: `Bearer ${h.admin}` },
      });
      expect(res.headers["content-type"]).toMatch(/text\/plain/);
      expect(res.body).toMatch(/# TYPE beta9_machines gauge/);
      expect(res.body).toMatch(/beta9_http_requests_total\{/);
    });
  });
}
