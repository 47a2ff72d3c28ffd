import { DIALECTS } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Harness, harness } from "./harness.ts";

/*
 * Workspaces through the management API: the operator (an admin of `default`, the workspace the
 * gateway makes on its first start) creates them and their first keys; an admin of another workspace
 * runs its own keys and deployments and nothing of the pool's.
 */
for (const dialect of DIALECTS) {
  describe(`workspaces API on ${dialect.name}`, () => {
    let h: Harness;
    let teamAdmin: string;
    beforeEach(async () => {
      h = await harness(dialect);
      const created = await h.call("POST", "/api/v1/workspaces", { body: { name: "team" } });
      expect(created).toMatchObject({
        status: 201,
        body: { name: "team", operator: false, id: expect.stringMatching(/^ws_/) },
      });
      const key = await h.call("POST", "/api/v1/keys", {
        body: { name: "team-admin", scopes: ["admin"], workspace: "team" },
      });
      expect(key).toMatchObject({ status: 201, body: { workspace: "team", scopes: ["admin"] } });
      teamAdmin = key.body.key;
    });
    afterEach(async () => {
      await h.gw.close();
    });

    it("the operator lists every workspace, any other key its own; names are unique and checked", async () => {
      const all = await h.call("GET", "/api/v1/workspaces");
      expect(
        all.body.workspaces.map((w: { name: string; operator: boolean }) => [w.name, w.operator]),
      ).toEqual([
        ["default", true],
        ["team", false],
      ]);
      const reader = (
        await h.call("POST", "/api/v1/keys", { body: { name: "r", scopes: ["read"] }, key: teamAdmin })
      ).body.key;
      for (const key of [teamAdmin, reader]) {
        const own = await h.call("GET", "/api/v1/workspaces", { key });
        expect(own.body.workspaces.map((w: { name: string }) => w.name)).toEqual(["team"]);
      }

      const again = await h.call("POST", "/api/v1/workspaces", { body: { name: "team" } });
      expect(again).toMatchObject({ status: 409, body: { error: { code: "conflict" } } });
      expect(again.body.error.message).toMatch(/exists already.*b9 workspace list/);
      const bad = await h.call("POST", "/api/v1/workspaces", { body: { name: "no spaces" } });
      expect(bad).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect((await h.call("POST", "/api/v1/workspaces", { body: { name: "x" }, key: null })).status).toBe(
        401,
      );
      // A name far too long for the router is refused in our shape too, without echoing it.
      const long = await h.call("DELETE", `/api/v1/workspaces/${"y".repeat(300)}`);
      expect(long).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(long.body.error.message).not.toContain("yyyy");
      expect((await h.call("GET", "/api/v1/workspaces")).body.workspaces).toHaveLength(2);
    });

    it("an admin of another workspace runs its own keys, and nothing of the pool's", async () => {
      // Its own keys, with or without naming its workspace.
      for (const body of [
        { name: "app", scopes: ["inference"] },
        { name: "app2", scopes: ["inference"], workspace: "team" },
      ]) {
        const k = await h.call("POST", "/api/v1/keys", { body, key: teamAdmin });
        expect(k).toMatchObject({ status: 201, body: { workspace: "team" } });
      }
      const listed = await h.call("GET", "/api/v1/keys", { key: teamAdmin });
      expect(listed.body.keys.map((k: { name: string }) => k.name).sort()).toEqual([
        "app",
        "app2",
        "team-admin",
      ]);

      const refusals: [string, string, unknown?][] = [
        ["POST", "/api/v1/workspaces", { name: "mine" }],
        ["POST", "/api/v1/tokens", { pool: "external" }],
        ["GET", "/api/v1/tokens"],
        ["DELETE", "/api/v1/tokens/tok_x"],
        ["POST", "/api/v1/pools", { name: "mine" }],
        ["POST", "/api/v1/machines/m1/cordon"],
        ["POST", "/api/v1/machines/m1/drain"],
        ["DELETE", "/api/v1/machines/m1"],
        ["POST", "/api/v1/keys", { name: "escalate", scopes: ["admin"], workspace: "default" }],
      ];
      for (const [method, url, body] of refusals) {
        const res = await h.call(method, url, { key: teamAdmin, ...(body === undefined ? {} : { body }) });
        expect(res.status, `${method} ${url}`).toBe(403);
        expect(res.body.error.code, `${method} ${url}`).toBe("forbidden");
        expect(res.body.error.message).toMatch(/only a key of the default workspace, which runs the pool/);
      }
      // Nothing was made by the refused calls.
      expect((await h.call("GET", "/api/v1/keys")).body.keys.map((k: { name: string }) => k.name)).toEqual([
        "admin",
      ]);
      expect((await h.call("GET", "/api/v1/tokens")).body.tokens).toEqual([]);
      expect((await h.call("GET", "/api/v1/pools")).body.pools.map((p: { name: string }) => p.name)).toEqual([
        "external",
      ]);
      // Reading the pool's machines and pools is allowed: they serve every workspace.
      expect((await h.call("GET", "/api/v1/machines", { key: teamAdmin })).status).toBe(200);
      expect((await h.call("GET", "/api/v1/pools", { key: teamAdmin })).status).toBe(200);
    });

    it("the operator removes a workspace with its deployments and keys; its keys stop at once", async () => {
      const app = (
        await h.call("POST", "/api/v1/keys", { body: { name: "app", scopes: ["inference"] }, key: teamAdmin })
      ).body.key;
      const dep = { name: "team-model", source: "ollama:qwen2.5:0.5b" };
      expect((await h.call("POST", "/api/v1/deployments", { body: dep, key: teamAdmin })).status).toBe(201);
      expect(
        (await h.call("GET", "/v1/models", { key: app })).body.data.map((m: { id: string }) => m.id),
      ).toEqual(["team-model"]);

      const refused = await h.call("DELETE", "/api/v1/workspaces/team", { key: teamAdmin });
      expect(refused).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
      const operatorOwn = await h.call("DELETE", "/api/v1/workspaces/default");
      expect(operatorOwn).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(operatorOwn.body.error.message).toMatch(/runs the pool; it cannot be removed/);

      const removed = await h.call("DELETE", "/api/v1/workspaces/team");
      expect(removed).toEqual({
        status: 200,
        body: { name: "team", deployments_removed: 1, keys_removed: 2 },
      });
      for (const key of [teamAdmin, app]) {
        const res = await h.call("GET", "/v1/models", { key });
        expect(res.status).toBe(401);
      }
      expect((await h.gw.store.deployments.listAll()).map((d) => d.name)).toEqual([]);
      expect(
        (await h.call("GET", "/api/v1/workspaces")).body.workspaces.map((w: { name: string }) => w.name),
      ).toEqual(["default"]);
      const again = await h.call("DELETE", "/api/v1/workspaces/team");
      expect(again).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      // The name and the model name are free again.
      expect((await h.call("POST", "/api/v1/workspaces", { body: { name: "team" } })).status).toBe(201);
      expect((await h.call("POST", "/api/v1/deployments", { body: dep })).status).toBe(201);
    });

    it("the operator lists, limits and revokes another workspace's keys; a team cannot touch the operator's", async () => {
      const app = (
        await h.call("POST", "/api/v1/keys", { body: { name: "app", scopes: ["inference"] }, key: teamAdmin })
      ).body;
      const listed = await h.call("GET", "/api/v1/keys?workspace=team");
      expect(listed.body.keys.map((k: { name: string; workspace: string }) => [k.name, k.workspace])).toEqual(
        [
          ["team-admin", "team"],
          ["app", "team"],
        ],
      );
      const limited = await h.call("POST", `/api/v1/keys/${app.id}/limits`, { body: { rpm_limit: 30 } });
      expect(limited).toMatchObject({ status: 200, body: { workspace: "team", rpm_limit: 30 } });
      expect((await h.call("DELETE", `/api/v1/keys/${app.id}`)).body).toMatchObject({ revoked: true });
      expect((await h.call("GET", "/v1/models", { key: app.key })).status).toBe(401);

      const operatorKey = (await h.call("GET", "/api/v1/keys")).body.keys[0].id;
      const peek = await h.call("GET", "/api/v1/keys?workspace=default", { key: teamAdmin });
      expect(peek).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
      for (const [method, url, body] of [
        ["DELETE", `/api/v1/keys/${operatorKey}`, undefined],
        ["POST", `/api/v1/keys/${operatorKey}/limits`, { rpm_limit: 1 }],
      ] as const) {
        const res = await h.call(method, url, { key: teamAdmin, ...(body ? { body } : {}) });
        expect(res).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      }
      expect((await h.call("GET", "/api/v1/keys")).body.keys[0]).toMatchObject({
        revoked: false,
        rpm_limit: null,
      });
    });

    it("the operator sees and removes another workspace's deployments; a team cannot see the operator's", async () => {
      const dep = { name: "team-model", source: "ollama:qwen2.5:0.5b" };
      expect((await h.call("POST", "/api/v1/deployments", { body: dep, key: teamAdmin })).status).toBe(201);
      expect((await h.call("POST", "/api/v1/deployments", { body: { ...dep, name: "ours" } })).status).toBe(
        201,
      );
      const theirs = await h.call("GET", "/api/v1/deployments?workspace=team");
      expect(
        theirs.body.deployments.map((d: { name: string; workspace: string }) => [d.name, d.workspace]),
      ).toEqual([["team-model", "team"]]);
      expect((await h.call("GET", "/api/v1/deployments/team-model?workspace=team")).body).toMatchObject({
        workspace: "team",
      });
      const peek = await h.call("GET", "/api/v1/deployments?workspace=default", { key: teamAdmin });
      expect(peek).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
      expect(
        (await h.call("DELETE", "/api/v1/deployments/ours?workspace=default", { key: teamAdmin })).status,
      ).toBe(403);
      expect((await h.call("GET", "/api/v1/deployments?other=1")).status).toBe(400);
      expect((await h.call("DELETE", "/api/v1/deployments/team-model?workspace=team")).status).toBe(204);
      expect((await h.call("GET", "/api/v1/deployments", { key: teamAdmin })).body.deployments).toEqual([]);
    });

    it("a workspace's limits hold over all its keys together; only the operator sets them", async () => {
      const made = await h.call("POST", "/api/v1/workspaces", { body: { name: "lab", rpm_limit: 2 } });
      expect(made.body).toMatchObject({ name: "lab", rpm_limit: 2, tpm_limit: null });
      const labAdmin = (
        await h.call("POST", "/api/v1/keys", { body: { name: "a", scopes: ["admin"], workspace: "lab" } })
      ).body.key;
      const second = (
        await h.call("POST", "/api/v1/keys", { body: { name: "b", scopes: ["inference"] }, key: labAdmin })
      ).body.key;
      const chat = { model: "nope", messages: [{ role: "user", content: "hi" }] };
      const call = (key: string) => h.call("POST", "/v1/chat/completions", { body: chat, key });
      expect([(await call(labAdmin)).status, (await call(second)).status]).toEqual([404, 404]);
      const refused = await call(second);
      expect(refused.status).toBe(429);
      expect(refused.body.error.message).toMatch(
        /this workspace's keys may make 2 requests per minute together; retry in \d+ s, or ask the pool's operator/,
      );
      // The team cannot lift it, nor escape it with a new key.
      const lift = await h.call("POST", "/api/v1/workspaces/lab/limits", {
        body: { rpm_limit: null },
        key: labAdmin,
      });
      expect(lift).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
      const fresh = (
        await h.call("POST", "/api/v1/keys", { body: { name: "c", scopes: ["inference"] }, key: labAdmin })
      ).body.key;
      expect((await call(fresh)).status).toBe(429);

      const lifted = await h.call("POST", "/api/v1/workspaces/lab/limits", { body: { rpm_limit: null } });
      expect(lifted).toMatchObject({ status: 200, body: { name: "lab", rpm_limit: null } });
      expect((await call(fresh)).status).toBe(404);
      for (const body of [{}, { rpm_limit: 0 }, { name: "x" }]) {
        expect((await h.call("POST", "/api/v1/workspaces/lab/limits", { body })).status).toBe(400);
      }
      expect(
        (await h.call("POST", "/api/v1/workspaces/nope/limits", { body: { rpm_limit: 5 } })).status,
      ).toBe(404);
      const listed = await h.call("GET", "/api/v1/workspaces");
      expect(listed.body.workspaces.find((w: { name: string }) => w.name === "lab")).toMatchObject({
        rpm_limit: null,
        tpm_limit: null,
      });
    });

    it("the operator gives keys to existing workspaces only, and says how to make one", async () => {
      const res = await h.call("POST", "/api/v1/keys", {
        body: { name: "k", scopes: ["read"], workspace: "nowhere" },
      });
      expect(res).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      expect(res.body.error.message).toMatch(
        /no workspace named nowhere;.*create it with `b9 workspace create nowhere`/,
      );
    });
  });
}
