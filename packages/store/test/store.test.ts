import { NO_FOOTPRINT, Store } from "@beta9/store";
import { DIALECTS, openTestStore } from "@beta9/test-utils";
import { Migrator } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { migrationProvider } from "../src/migrations/index.ts";

const now = 1_790_000_000_000;

for (const dialect of DIALECTS) {
  describe(`store on ${dialect.name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await openTestStore(dialect);
      await store.pools.insert({ name: "external", description: "", created_at: now });
      await store.workspaces.insert({ id: "ws_1", name: "default", created_at: now });
    });
    afterEach(async () => {
      await store.close();
    });

    it("migrates twice without harm", async () => {
      await store.migrate();
      expect((await store.pools.list()).map((p) => p.name)).toEqual(["external"]);
    });

    it("round-trips times as numbers and nulls as nulls", async () => {
      await store.tokens.insert(token("t1", "h1", { expires_at: now + 3_600_000 }));
      const t = await store.tokens.get("t1");
      expect(t).toMatchObject({
        expires_at: now + 3_600_000,
        revoked_at: null,
        uses_left: 1,
        pool: "external",
      });
      expect(typeof t?.created_at).toBe("number");
    });

    it("spends a join token once and says why it refuses after", async () => {
      await store.tokens.insert(token("t1", "h1", { uses_total: 2, uses_left: 2 }));
      expect((await store.tokens.consume("h1", now)).ok).toBe(true);
      expect((await store.tokens.consume("h1", now)).ok).toBe(true);
      expect(await store.tokens.consume("h1", now)).toMatchObject({ ok: false, reason: "used_up" });
      expect(await store.tokens.consume("nope", now)).toMatchObject({ ok: false, reason: "invalid" });
      expect((await store.tokens.get("t1"))?.uses_left).toBe(0);
    });

    it("refuses expired and revoked tokens", async () => {
      await store.tokens.insert(token("t1", "h1", { expires_at: now - 1 }));
      await store.tokens.insert(token("t2", "h2"));
      await store.tokens.revoke("t2", now);
      expect(await store.tokens.consume("h1", now)).toMatchObject({ ok: false, reason: "expired" });
      expect(await store.tokens.consume("h2", now)).toMatchObject({ ok: false, reason: "revoked" });
    });

    it("lets exactly one of many racers spend a one-use token", async () => {
      await store.tokens.insert(token("t1", "h1"));
      const results = await Promise.all(Array.from({ length: 8 }, () => store.tokens.consume("h1", now)));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect((await store.tokens.get("t1"))?.uses_left).toBe(0);
    });

    it("rolls back every write of a failed transaction", async () => {
      await store.tokens.insert(token("t1", "h1"));
      await expect(
        store.transaction(async (tx) => {
          await tx.tokens.consume("h1", now);
          await tx.machines.insert(machine("m1", "c1"));
          await tx.machines.insert(machine("m1", "c2")); // duplicate id: fails
        }),
      ).rejects.toThrow();
      expect(await store.machines.get("m1")).toBeUndefined();
      expect((await store.tokens.get("t1"))?.uses_left).toBe(1);
    });

    it("keeps machines, finds them by credential, updates and removes them", async () => {
      await store.machines.insert(machine("m1", "c1"));
      await store.machines.insert(machine("m2", "c2"));
      expect((await store.machines.byCredentialHash("c2"))?.id).toBe("m2");
      expect(await store.machines.update("m1", { cordoned_at: now })).toBe(true);
      expect((await store.machines.get("m1"))?.cordoned_at).toBe(now);
      await store.machines.recordHeartbeats(
        new Map([
          ["m1", now + 5],
          ["m2", now + 5],
        ]),
      );
      expect((await store.machines.list()).map((m) => m.last_heartbeat_at)).toEqual([now + 5, now + 5]);
      expect(await store.machines.remove("m1")).toBe(true);
      expect(await store.machines.remove("m1")).toBe(false);
      expect((await store.pools.list())[0]?.machines).toBe(1);
    });

    it("says which machines' flags were set and which machines were removed since a time, for replicas", async () => {
      await store.machines.insert(machine("m1", "c1"));
      await store.machines.insert(machine("m2", "c2"));
      await store.machines.insert(machine("m3", "c3"));
      const before = Date.now();
      // A heartbeat is not a flag: m2 is not among what changed.
      await store.machines.recordHeartbeats(new Map([["m2", now + 5]]));
      await store.machines.update("m1", { draining_at: now, country: "DE" });
      await store.machines.update("m2", { agent_version: "0.2.0" });
      expect(await store.machines.flagsChangedSince(before)).toEqual([
        { id: "m1", cordoned_at: null, draining_at: now, country: "DE", pue: 1 },
      ]);
      expect(await store.machines.flagsChangedSince(Date.now() + 1_000)).toEqual([]);
      expect(await store.machines.removedSince(before)).toEqual([]);
      expect(await store.machines.remove("m3")).toBe(true);
      expect(await store.machines.remove("m3")).toBe(false);
      expect(await store.machines.removedSince(before)).toEqual(["m3"]);
      expect(await store.machines.removedSince(Date.now() + 1_000)).toEqual([]);
      await store.machines.pruneRemovals(Date.now() + 1);
      expect(await store.machines.removedSince(0)).toEqual([]);
    });

    it("refuses a machine in a pool that does not exist", async () => {
      await expect(store.machines.insert({ ...machine("m1", "c1"), pool: "nope" })).rejects.toThrow();
    });

    it("keeps API keys hashed and revocable", async () => {
      await store.keys.insert({
        id: "k1",
        name: "ci",
        workspace_id: "ws_1",
        scopes: "read,inference",
        key_hash: "kh1",
        prefix: "b9_abcd",
        revoked_at: null,
        created_at: now,
        last_used_at: null,
        rpm_limit: null,
        tpm_limit: null,
      });
      expect((await store.keys.byHash("kh1"))?.scopes).toBe("read,inference");
      expect((await store.keys.revoke("k1", now))?.revoked_at).toBe(now);
      expect(await store.keys.list({ workspaceId: "ws_1" })).toHaveLength(1);
    });

    it("keeps a key's limits, and null for none", async () => {
      const base = {
        workspace_id: "ws_1",
        scopes: "inference",
        prefix: "b9_abcd",
        revoked_at: null,
        created_at: now,
        last_used_at: null,
      };
      await store.keys.insert({
        ...base,
        id: "k1",
        name: "a",
        key_hash: "kh1",
        rpm_limit: 60,
        tpm_limit: 100_000,
      });
      await store.keys.insert({
        ...base,
        id: "k2",
        name: "b",
        key_hash: "kh2",
        rpm_limit: null,
        tpm_limit: null,
      });
      expect(await store.keys.get("k1")).toMatchObject({ rpm_limit: 60, tpm_limit: 100_000 });
      expect(await store.keys.get("k2")).toMatchObject({ rpm_limit: null, tpm_limit: null });
    });

    it("records usage in batches and sums it per model, key and day, one workspace at a time", async () => {
      const day = 86_400_000;
      const day0 = Math.floor(now / day) * day;
      const rows = [
        // ws_1, model a: latencies 10..100 (10 rows), one an error
        ...Array.from({ length: 10 }, (_, i) =>
          usage(`u${i}`, { latency_ms: (i + 1) * 10, status: i === 9 ? 502 : 200 }),
        ),
        usage("u10", { model: "b", key_id: "k2", prompt_tokens: 7, completion_tokens: 3, latency_ms: 5 }),
        usage("u11", { model: "b", key_id: "k2", started_at: day0 + day + 5, status: 429, machine_id: null }),
        // another workspace, and rows outside the window
        usage("u12", { workspace_id: "ws_2", model: "a" }),
        usage("u13", { started_at: day0 - 1 }),
        usage("u14", { started_at: day0 + 2 * day }),
      ];
      await store.usage.insertMany(rows);
      await store.usage.insertMany([]);
      const q = { workspaceId: "ws_1", since: day0, until: day0 + 2 * day };
      expect(await store.usage.summarize({ ...q, groupBy: "model" })).toEqual([
        {
          group: "a",
          requests: 10,
          prompt_tokens: 100,
          completion_tokens: 50,
          errors: 1,
          p50_latency_ms: 50,
          p95_latency_ms: 100,
          energy_wh: null,
          co2e_g: null,
        },
        {
          group: "b",
          requests: 2,
          prompt_tokens: 17,
          completion_tokens: 8,
          errors: 1,
          p50_latency_ms: 5,
          p95_latency_ms: 100,
          energy_wh: null,
          co2e_g: null,
        },
      ]);
      expect(
        (await store.usage.summarize({ ...q, groupBy: "key" })).map((g) => [g.group, g.requests]),
      ).toEqual([
        ["k1", 10],
        ["k2", 2],
      ]);
      expect(
        (await store.usage.summarize({ ...q, groupBy: "day" })).map((g) => [g.group, g.requests]),
      ).toEqual([
        [String(day0), 11],
        [String(day0 + day), 1],
      ]);
      expect(await store.usage.summarize({ ...q, workspaceId: "ws_nope", groupBy: "model" })).toEqual([]);
    });

    it("reads back each usage row of a batch as written, every column, in a transaction too", async () => {
      const footprint = {
        energy_wh: 0.25,
        energy_method: "counter",
        energy_confidence: "medium",
        pue: 1.2,
        grid_zone: "FR",
        grid_intensity: 56,
        intensity_source: "ember:2023",
        intensity_year: 2023,
        intensity_confidence: "high",
        co2e_g: 0.0168,
        carbon_basis: "location",
      };
      // 7 rows: statements of 4, 2 and 1 rows; with and without a footprint and a request id.
      const rows = Array.from({ length: 7 }, (_, i) =>
        usage(`u${i}`, {
          latency_ms: i,
          ttfb_ms: i % 2 ? null : i,
          machine_id: i === 3 ? null : "m1",
          ...(i % 3 === 0 ? { ...footprint, request_id: `req_${i}` } : {}),
        }),
      );
      await store.usage.insertMany(rows.slice(0, 4));
      await store.transaction((tx) => tx.usage.insertMany(rows.slice(4)));
      const back = await store.db.selectFrom("usage").selectAll().orderBy("id").execute();
      expect(back).toEqual(rows.map((r) => ({ ...NO_FOOTPRINT, request_id: null, ...r })));
    });

    it("writes a batch larger than one statement's chunk", async () => {
      const rows = Array.from({ length: 1203 }, (_, i) => usage(`u${i}`, { latency_ms: i }));
      await store.usage.insertMany(rows);
      const [g] = await store.usage.summarize({
        workspaceId: "ws_1",
        since: now - 1,
        until: now + 1,
        groupBy: "model",
      });
      expect(g).toMatchObject({
        requests: 1203,
        prompt_tokens: 12_030,
        p50_latency_ms: 601,
        p95_latency_ms: 1142,
      });
    });

    it("keeps a machine's country, and null when it declared none", async () => {
      await store.machines.insert({ ...machine("m1", "c1"), country: "DE" });
      await store.machines.insert(machine("m2", "c2"));
      expect((await store.machines.get("m1"))?.country).toBe("DE");
      expect((await store.machines.get("m2"))?.country).toBeNull();
      expect(await store.machines.update("m2", { country: "FR" })).toBe(true);
      expect((await store.machines.list()).map((m) => m.country)).toEqual(["DE", "FR"]);
    });

    it("keeps residency: a token's country, a machine's declared country and PUE, workspaces' and keys' sets", async () => {
      await store.tokens.insert(token("t1", "h1", { country: "FR" }));
      await store.tokens.insert(token("t2", "h2"));
      expect((await store.tokens.get("t1"))?.country).toBe("FR");
      expect((await store.tokens.get("t2"))?.country).toBeNull();
      await store.machines.insert(machine("m1", "c1"));
      expect(await store.machines.get("m1")).toMatchObject({ pue: 1, declared_country: null });
      await store.machines.update("m1", { pue: 1.35, declared_country: "US", country: "DE" });
      expect(await store.machines.get("m1")).toMatchObject({
        pue: 1.35,
        declared_country: "US",
        country: "DE",
      });
      expect(await store.workspaces.byId("ws_1")).toMatchObject({ region: null, countries: "" });
      await store.workspaces.setResidency("ws_1", { region: "eu", countries: "DE,FR" });
      expect(await store.workspaces.byId("ws_1")).toMatchObject({ region: "eu", countries: "DE,FR" });
      await store.keys.insert({
        id: "k1",
        name: "k",
        workspace_id: "ws_1",
        scopes: "inference",
        key_hash: "kh1",
        prefix: "b9_x",
        revoked_at: null,
        created_at: now,
        last_used_at: null,
        rpm_limit: null,
        tpm_limit: null,
      });
      expect(await store.keys.get("k1")).toMatchObject({ region: null, countries: "" });
      expect(await store.keys.setResidency("k1", { region: null, countries: "DE" })).toMatchObject({
        countries: "DE",
      });
    });

    it("keeps a country an agent declared before residency only as declared: the operator sets it anew", async () => {
      const cfg = dialect.config();
      const old = await Store.open(cfg);
      try {
        const names = Object.keys(await migrationProvider.getMigrations()).sort();
        const migrator = new Migrator({
          db: old.db,
          provider: migrationProvider,
          ...("schema" in cfg && cfg.schema ? { migrationTableSchema: cfg.schema } : {}),
        });
        const before = names[names.indexOf("2026-12-07T0100-residency") - 1]!;
        expect((await migrator.migrateTo(before)).error).toBeUndefined();
        await old.pools.insert({ name: "external", description: "", created_at: now });
        // Written as an agent's join wrote it before: its own word in `country`.
        await old.db
          .insertInto("machines")
          .values({ ...machine("m1", "c1"), country: "DE" })
          .execute();
        await old.migrate();
        expect(await old.machines.get("m1")).toMatchObject({ country: null, declared_country: "DE", pue: 1 });
      } finally {
        await old.close();
      }
    });

    it("round-trips a deployment: numbers as numbers, nulls as nulls, names with ':' and '/'", async () => {
      const full = deployment("ws_1", "llama3.2:1b", {
        sha256: "a".repeat(64),
        engine: "builtin",
        min_replicas: 1,
        max_replicas: 3,
        idle_seconds: 600,
        gpu: "nvidia",
        min_vram_bytes: 24 * 2 ** 30,
        countries: "DE,FR",
        region: "eu",
        prefer: "low-carbon",
        context_size: 8192,
      });
      expect(await store.deployments.insert(full)).toBe(true);
      expect(await store.deployments.insert(deployment("ws_1", "library/qwen2.5:7b"))).toBe(true);
      expect(await store.deployments.get("ws_1", "llama3.2:1b")).toEqual(full);
      const bare = await store.deployments.get("ws_1", "library/qwen2.5:7b");
      expect(bare).toMatchObject({ sha256: null, engine: null, min_vram_bytes: null, countries: "" });
      expect(typeof bare?.created_at).toBe("number");
      expect(await store.deployments.get("ws_1", "nope")).toBeUndefined();
    });

    it("keeps a deployment name unique in the pool: one name, one model, across workspaces", async () => {
      await store.workspaces.insert({ id: "ws_2", name: "team", created_at: now });
      expect(await store.deployments.insert(deployment("ws_1", "m"))).toBe(true);
      expect(await store.deployments.insert(deployment("ws_1", "m", { source: "other" }))).toBe(false);
      expect(await store.deployments.insert(deployment("ws_2", "m", { source: "other" }))).toBe(false);
      expect(await store.deployments.insert(deployment("ws_2", "a"))).toBe(true);
      expect((await store.deployments.get("ws_1", "m"))?.source).toBe("hf:org/repo/model.gguf");
      expect(await store.deployments.get("ws_2", "m")).toBeUndefined();
      expect((await store.deployments.list("ws_1")).map((d) => d.name)).toEqual(["m"]);
      expect((await store.deployments.list("ws_2")).map((d) => d.name)).toEqual(["a"]);
      expect((await store.deployments.listAll()).map((d) => `${d.workspace_id}/${d.name}`)).toEqual([
        "ws_1/m",
        "ws_2/a",
      ]);
      const named = (names: string[]) =>
        store.deployments.named(names).then((rows) => rows.map((d) => `${d.workspace_id}/${d.name}`));
      expect(await named(["m", "a"])).toEqual(["ws_1/m", "ws_2/a"]);
      expect(await named(["a", "nope"])).toEqual(["ws_2/a"]);
      expect(await named([])).toEqual([]);
    });

    it("treats deployment names as one across case: stored lowercase, found and refused in any case", async () => {
      await store.workspaces.insert({ id: "ws_2", name: "team", created_at: now });
      expect(await store.deployments.insert(deployment("ws_1", "Victim"))).toBe(true);
      expect(await store.deployments.insert(deployment("ws_2", "VICTIM", { source: "other" }))).toBe(false);
      expect((await store.deployments.get("ws_1", "vIcTiM"))?.name).toBe("victim");
      expect((await store.deployments.named(["VICTIM"])).map((d) => d.name)).toEqual(["victim"]);
      expect(await store.deployments.remove("ws_1", "VICTIM")).toBe(true);
    });

    it("keeps where gateways placed replicas, one model name per machine, gone with the machine", async () => {
      await store.machines.insert(machine("m1", "c1"));
      const placed = {
        machine_id: "m1",
        model: "llama",
        workspace_id: "ws_1",
        deployment_created_at: now,
        reason: null,
      };
      await store.placements.put({ ...placed, placed_at: now });
      await store.placements.put({
        ...placed,
        deployment_created_at: now + 1,
        placed_at: now + 2,
        reason: "greenest",
      });
      await store.placements.put({ ...placed, model: "qwen", placed_at: now });
      const rows = await store.placements.list("m1");
      expect(rows.map((r) => [r.model, r.deployment_created_at, r.placed_at, r.reason]).sort()).toEqual([
        ["llama", now + 1, now + 2, "greenest"],
        ["qwen", now, now, null],
      ]);
      await store.placements.remove("m1", "qwen");
      expect((await store.placements.list()).map((r) => r.model)).toEqual(["llama"]);
      expect(await store.machines.remove("m1")).toBe(true);
      expect(await store.placements.list()).toEqual([]);
    });

    it("lets exactly one of many racers in two workspaces take a name", async () => {
      await store.workspaces.insert({ id: "ws_2", name: "team", created_at: now });
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          store.deployments.insert(deployment(i % 2 ? "ws_1" : "ws_2", "m", { source: `s${i}` })),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.deployments.list()).toHaveLength(1);
    });

    it("lets exactly one of many racers create a deployment", async () => {
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          store.deployments.insert(deployment("ws_1", "m", { source: `s${i}` })),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.deployments.list()).toHaveLength(1);
    });

    it("removes a deployment from its own workspace only, which frees the name", async () => {
      await store.workspaces.insert({ id: "ws_2", name: "team", created_at: now });
      await store.deployments.insert(deployment("ws_1", "m"));
      expect(await store.deployments.remove("ws_2", "m")).toBe(false);
      expect(await store.deployments.get("ws_1", "m")).toBeDefined();
      expect(await store.deployments.remove("ws_1", "m")).toBe(true);
      expect(await store.deployments.remove("ws_1", "m")).toBe(false);
      expect(await store.deployments.get("ws_1", "m")).toBeUndefined();
      expect(await store.deployments.insert(deployment("ws_2", "m"))).toBe(true);
    });

    it("refuses a deployment in a pool or workspace that does not exist", async () => {
      await expect(store.deployments.insert(deployment("ws_1", "m", { pool: "nope" }))).rejects.toThrow();
      await expect(store.deployments.insert(deployment("ws_nope", "m"))).rejects.toThrow();
    });

    it("claims a setting once", async () => {
      expect(await store.settings.claim("bootstrap", "1")).toBe(true);
      expect(await store.settings.claim("bootstrap", "2")).toBe(false);
      expect(await store.settings.get("bootstrap")).toBe("1");
    });

    it("keeps each gateway replica's row, rewritten in place, and forgets the silent ones", async () => {
      const row = { id: "gw_a", url: "http://10.0.0.1:1994", started_at: now, spent: '{"key_1":[3,120]}' };
      await store.gatewayReplicas.put({ ...row, last_seen_at: now, machines: 1, served: '{"m":1}' });
      const held = '{"m_1":{"status":"READY"}}';
      const summary = { ...row, last_seen_at: now + 2_000, machines: 2, served: "{}" };
      await store.gatewayReplicas.put({ ...summary, held: { json: held, at: now + 2_000 } });
      await store.gatewayReplicas.put({ ...row, id: "gw_b", last_seen_at: now, machines: 0, served: "{}" });
      expect(await store.gatewayReplicas.seenSince(now + 1_000)).toEqual([
        { ...summary, held_at: now + 2_000 },
      ]);
      // A write without machines keeps the ones written before, and when they were written.
      await store.gatewayReplicas.put({ ...summary, last_seen_at: now + 4_000 });
      expect(await store.gatewayReplicas.held(["gw_a", "gw_b"])).toEqual(
        expect.arrayContaining([
          { id: "gw_a", held, held_at: now + 2_000 },
          { id: "gw_b", held: "{}", held_at: 0 },
        ]),
      );
      await store.gatewayReplicas.prune(now + 1_000);
      expect((await store.gatewayReplicas.seenSince(0)).map((r) => r.id)).toEqual(["gw_a"]);
      await store.gatewayReplicas.remove("gw_a");
      expect(await store.gatewayReplicas.seenSince(0)).toEqual([]);
      expect(await store.gatewayReplicas.held(["gw_a"])).toEqual([]);
    });
  });
}

function token(id: string, hash: string, over: Partial<Parameters<Store["tokens"]["insert"]>[0]> = {}) {
  return {
    id,
    token_hash: hash,
    pool: "external",
    description: "",
    expires_at: now + 3_600_000,
    uses_total: 1,
    uses_left: 1,
    revoked_at: null,
    created_at: now,
    ...over,
  };
}

function usage(id: string, over: Partial<Parameters<Store["usage"]["insertMany"]>[0][number]> = {}) {
  return {
    id,
    key_id: "k1",
    workspace_id: "ws_1",
    model: "a",
    machine_id: "m1",
    status: 200,
    prompt_tokens: 10,
    completion_tokens: 5,
    latency_ms: 100,
    ttfb_ms: 20,
    started_at: now,
    ...over,
  };
}

function machine(id: string, cred: string) {
  return {
    id,
    name: id,
    pool: "external",
    hostname: "host",
    agent_version: "0.1.0",
    hardware: "{}",
    credential_hash: cred,
    protocol: "channel",
    cordoned_at: null,
    draining_at: null,
    joined_at: now,
    last_heartbeat_at: null,
    join_token_id: null,
    country: null,
  };
}

function deployment(
  workspaceId: string,
  name: string,
  over: Partial<Parameters<Store["deployments"]["insert"]>[0]> = {},
) {
  return {
    workspace_id: workspaceId,
    name,
    source: "hf:org/repo/model.gguf",
    sha256: null,
    engine: null,
    min_replicas: 0,
    max_replicas: 1,
    idle_seconds: 300,
    pool: "external",
    gpu: "any",
    min_vram_bytes: null,
    countries: "",
    region: null,
    prefer: null,
    context_size: null,
    quantize: null,
    created_at: now,
    ...over,
  };
}
