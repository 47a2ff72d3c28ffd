import { createLogger } from "@beta9/http";
import { Store, type StoreConfig } from "@beta9/store";
import { DIALECTS, tempDir } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildGateway } from "../src/app.ts";
import { gatewayConfig } from "../src/config.ts";
import { type Harness, harness } from "./harness.ts";

const llama = {
  name: "llama3.2:1b",
  source: "hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
};

for (const dialect of DIALECTS) {
  describe(`deployments API on ${dialect.name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await harness(dialect);
    });
    afterEach(async () => {
      await h.gw.close();
    });

    it("creates with defaults, lists, shows and removes; names with ':' work raw and encoded", async () => {
      const created = await h.call("POST", "/api/v1/deployments", { body: llama });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        ...llama,
        workspace: "default",
        sha256: null,
        engine: null,
        min_replicas: 0,
        max_replicas: 1,
        idle_seconds: 300,
        pool: "external",
        gpu: "any",
        min_vram_bytes: null,
        countries: [],
        region: null,
        prefer: null,
        context_size: null,
        quantize: null,
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });

      const listed = await h.call("GET", "/api/v1/deployments");
      expect(listed).toMatchObject({ status: 200, body: { deployments: [created.body] } });
      expect((await h.call("GET", "/api/v1/deployments/llama3.2:1b")).body).toEqual(created.body);
      expect((await h.call("GET", "/api/v1/deployments/llama3.2%3A1b")).body).toEqual(created.body);

      const removed = await h.call("DELETE", "/api/v1/deployments/llama3.2%3A1b");
      expect(removed).toEqual({ status: 204, body: undefined });
      expect((await h.call("GET", "/api/v1/deployments")).body).toEqual({ deployments: [] });
      const gone = await h.call("GET", "/api/v1/deployments/llama3.2:1b");
      expect(gone).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      expect(gone.body.error.message).toMatch(/b9 model list/);
      expect((await h.call("DELETE", "/api/v1/deployments/llama3.2:1b")).status).toBe(404);
    });

    it("keeps every placement setting as given, and lists by name", async () => {
      expect((await h.call("POST", "/api/v1/pools", { body: { name: "gpu" } })).status).toBe(201);
      const full = {
        name: "library/qwen2.5:7b",
        source: "ollama:qwen2.5:7b",
        sha256: "ab".repeat(32),
        engine: "llamacpp",
        min_replicas: 1,
        max_replicas: 4,
        idle_seconds: 900,
        pool: "gpu",
        gpu: "nvidia",
        min_vram_bytes: 8 * 2 ** 30,
        countries: ["DE", "FR"],
        region: "eu",
        context_size: 8192,
      };
      const created = await h.call("POST", "/api/v1/deployments", { body: full });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject(full);
      // A name with "/" is one path segment once encoded, as the SDK sends it.
      const shown = await h.call("GET", `/api/v1/deployments/${encodeURIComponent(full.name)}`);
      expect(shown).toMatchObject({ status: 200, body: full });
      await h.call("POST", "/api/v1/deployments", { body: { name: "a-model", source: "/models/a.gguf" } });
      const names = (await h.call("GET", "/api/v1/deployments")).body.deployments.map(
        (d: { name: string }) => d.name,
      );
      expect(names).toEqual(["a-model", "library/qwen2.5:7b"]);
    });

    it("raises max_replicas to min_replicas when only the minimum is given", async () => {
      const created = await h.call("POST", "/api/v1/deployments", { body: { ...llama, min_replicas: 3 } });
      expect(created.body).toMatchObject({ min_replicas: 3, max_replicas: 3 });
    });

    it("validates: empty source, min above max, bad country, bad name, unknown pool, duplicate", async () => {
      const bad = async (body: Record<string, unknown>) =>
        h.call("POST", "/api/v1/deployments", { body: { ...llama, ...body } });
      const emptySource = await bad({ source: "" });
      expect(emptySource).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(emptySource.body.error.message).toMatch(/source/);

      const minMax = await bad({ min_replicas: 3, max_replicas: 2 });
      expect(minMax).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(minMax.body.error.message).toMatch(/max_replicas \(2\) is below min_replicas \(3\)/);

      for (const countries of [["de"], ["DEU"], ["D"], ["DE", "DE"]]) {
        expect((await bad({ countries })).status).toBe(400);
      }
      for (const name of ["", ".", "..", "has space", "-lead", "x".repeat(129)]) {
        expect((await bad({ name })).status).toBe(400);
      }
      expect((await bad({ gpu: "tpu" })).status).toBe(400);
      expect((await bad({ idle_seconds: 1 })).status).toBe(400);
      expect((await bad({ region: "us" })).status).toBe(400);
      expect((await bad({ sha256: "XYZ" })).status).toBe(400);
      expect((await bad({ min_vram_bytes: 1.5 })).status).toBe(400);
      expect((await bad({ extra: true })).status).toBe(400);

      const pool = await bad({ pool: "gpu-lab" });
      expect(pool).toMatchObject({ status: 404, body: { error: { code: "pool_unknown" } } });
      expect(pool.body.error.message).toMatch(/b9 pool create gpu-lab/);
      expect((await h.gw.store.deployments.listAll()).length).toBe(0);

      expect((await bad({})).status).toBe(201);
      const dup = await bad({ source: "/elsewhere.gguf" });
      expect(dup).toMatchObject({ status: 409, body: { error: { code: "conflict" } } });
      expect((await h.call("GET", "/api/v1/deployments/llama3.2:1b")).body.source).toBe(llama.source);
    });

    it("scopes: a read key lists and shows but cannot create or remove; an inference key cannot list", async () => {
      await h.call("POST", "/api/v1/deployments", { body: llama });
      const read = (await h.call("POST", "/api/v1/keys", { body: { name: "dash", scopes: ["read"] } })).body
        .key;
      const infer = (await h.call("POST", "/api/v1/keys", { body: { name: "app", scopes: ["inference"] } }))
        .body.key;
      expect((await h.call("GET", "/api/v1/deployments", { key: read })).body.deployments).toHaveLength(1);
      expect((await h.call("GET", "/api/v1/deployments/llama3.2:1b", { key: read })).status).toBe(200);
      const create = await h.call("POST", "/api/v1/deployments", {
        body: { name: "other", source: "x" },
        key: read,
      });
      expect(create).toMatchObject({ status: 403, body: { error: { code: "scope_missing" } } });
      expect((await h.call("DELETE", "/api/v1/deployments/llama3.2:1b", { key: read })).status).toBe(403);
      expect((await h.call("GET", "/api/v1/deployments", { key: infer })).status).toBe(403);
      expect((await h.call("GET", "/api/v1/deployments", { key: null })).status).toBe(401);
      expect((await h.gw.store.deployments.listAll()).map((d) => d.name)).toEqual(["llama3.2:1b"]);
    });

    it("a workspace sees, shows and removes only its own deployments; a name is one model in the pool", async () => {
      expect((await h.call("POST", "/api/v1/workspaces", { body: { name: "team" } })).status).toBe(201);
      const teamKey = (
        await h.call("POST", "/api/v1/keys", {
          body: { name: "team-admin", scopes: ["admin"], workspace: "team" },
        })
      ).body.key as string;
      await h.call("POST", "/api/v1/deployments", { body: llama });

      expect((await h.call("GET", "/api/v1/deployments", { key: teamKey })).body).toEqual({
        deployments: [],
      });
      expect((await h.call("GET", "/api/v1/deployments/llama3.2:1b", { key: teamKey })).status).toBe(404);
      expect((await h.call("DELETE", "/api/v1/deployments/llama3.2:1b", { key: teamKey })).status).toBe(404);

      // Machines serve a model under its name: another workspace cannot make the name mean another model.
      const clash = await h.call("POST", "/api/v1/deployments", {
        body: { ...llama, source: "ollama:llama3.2:1b" },
        key: teamKey,
      });
      expect(clash).toMatchObject({ status: 409, body: { error: { code: "conflict" } } });
      expect(clash.body.error.message).toMatch(
        /another workspace.*deploy under another name, e\.g\. llama3\.2:1b-2/,
      );
      const theirs = await h.call("POST", "/api/v1/deployments", {
        body: { ...llama, name: "team-llama", source: "ollama:llama3.2:1b" },
        key: teamKey,
      });
      expect(theirs).toMatchObject({
        status: 201,
        body: { workspace: "team", name: "team-llama", source: "ollama:llama3.2:1b" },
      });
      expect(
        (await h.call("GET", "/api/v1/deployments")).body.deployments.map((d: { name: string }) => d.name),
      ).toEqual(["llama3.2:1b"]);
      expect((await h.call("GET", "/api/v1/deployments/team-llama")).status).toBe(404);
      // Its own name again, in its own workspace: the usual conflict.
      const again = await h.call("POST", "/api/v1/deployments", { body: llama });
      expect(again.status).toBe(409);
      expect(again.body.error.message).toMatch(/exists already in this workspace/);
      expect((await h.call("DELETE", "/api/v1/deployments/team-llama", { key: teamKey })).status).toBe(204);
      expect((await h.gw.store.deployments.listAll()).map((d) => d.name)).toEqual(["llama3.2:1b"]);
    });
  });

  describe(`deployments across a gateway restart on ${dialect.name}`, () => {
    it("are still there after the gateway and its store are reopened", async () => {
      const config: StoreConfig = dialect.config();
      const dataDir = tempDir("b9-gwt-");
      const log = createLogger({ name: "test", level: "silent", pretty: false });
      const start = async () =>
        buildGateway(gatewayConfig({ dataDir }), { store: await Store.open(config), log });
      const call = (
        gw: Awaited<ReturnType<typeof start>>,
        key: string,
        method: "GET" | "POST",
        url: string,
        body?: unknown,
      ) =>
        gw.app.inject({
          method,
          url,
          headers: { authorization: `Bearer ${key}` },
          ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
        });

      const first = await start();
      const admin = first.adminKey!;
      let created: unknown;
      try {
        const res = await call(first, admin, "POST", "/api/v1/deployments", { ...llama, countries: ["DE"] });
        expect(res.statusCode).toBe(201);
        created = res.json();
      } finally {
        await first.close();
      }

      const second = await start();
      try {
        expect(second.adminKey).toBeUndefined(); // not bootstrapped again
        const res = await call(second, admin, "GET", "/api/v1/deployments/llama3.2:1b");
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual(created);
      } finally {
        await second.close();
      }
    });
  });
}
