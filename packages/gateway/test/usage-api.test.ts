import { createLogger } from "@beta9/http";
import { Store } from "@beta9/store";
import { DIALECTS, tempDir } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildGateway } from "../src/app.ts";
import { gatewayConfig } from "../src/config.ts";
import { type Harness, harness } from "./harness.ts";

/*
 * Key limits and the usage API in process (inject), on both stores. Requests go to a model no machine
 * serves: they are admitted, metered (404) and refused as the limits say, with no machine involved.
 * The end-to-end test with a real model is usage-limits.test.ts.
 */

const DAY = 86_400_000;

for (const dialect of DIALECTS) {
  describe(`key limits and usage API on ${dialect.name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await harness(dialect);
    });
    afterEach(async () => {
      await h.gw.close();
    });

    async function key(body: Record<string, unknown>): Promise<{ id: string; key: string }> {
      const res = await h.call("POST", "/api/v1/keys", { body });
      expect(res.status).toBe(201);
      return res.body;
    }

    it("creates keys with limits, lists them, and refuses limits below one", async () => {
      const limited = await h.call("POST", "/api/v1/keys", {
        body: { name: "app", scopes: ["inference"], rpm_limit: 60, tpm_limit: 100_000 },
      });
      expect(limited.body).toMatchObject({ rpm_limit: 60, tpm_limit: 100_000 });
      const open = await h.call("POST", "/api/v1/keys", {
        body: { name: "open", scopes: ["inference"], rpm_limit: null },
      });
      expect(open.body).toMatchObject({ rpm_limit: null, tpm_limit: null });
      const listed = (await h.call("GET", "/api/v1/keys")).body.keys;
      expect(listed.map((k: { name: string; rpm_limit: number | null }) => [k.name, k.rpm_limit])).toEqual([
        ["admin", null],
        ["app", 60],
        ["open", null],
      ]);
      for (const bad of [0, -1, 1.5, "60"]) {
        const res = await h.call("POST", "/api/v1/keys", {
          body: { name: "x", scopes: ["inference"], rpm_limit: bad },
        });
        expect(res.status).toBe(400);
      }
    });

    it("an admin changes a key's limits, and its next request is counted under them", async () => {
      const k = await key({ name: "app", scopes: ["inference"], rpm_limit: 2 });
      const chat = { model: "nope", messages: [{ role: "user", content: "hi" }] };
      const call = async () =>
        (await h.call("POST", "/v1/chat/completions", { body: chat, key: k.key })).status;
      expect([await call(), await call(), await call()]).toEqual([404, 404, 429]);

      const lifted = await h.call("POST", `/api/v1/keys/${k.id}/limits`, { body: { rpm_limit: null } });
      expect(lifted).toMatchObject({ status: 200, body: { id: k.id, rpm_limit: null, tpm_limit: null } });
      expect([await call(), await call(), await call()]).toEqual([404, 404, 404]);
      const tpm = await h.call("POST", `/api/v1/keys/${k.id}/limits`, { body: { tpm_limit: 500 } });
      expect(tpm.body).toMatchObject({ rpm_limit: null, tpm_limit: 500 });
      const one = await h.call("POST", `/api/v1/keys/${k.id}/limits`, { body: { rpm_limit: 1 } });
      expect(one.body).toMatchObject({ rpm_limit: 1, tpm_limit: 500 });
      expect([await call(), await call()]).toEqual([404, 429]);

      for (const body of [{}, { rpm_limit: 0 }, { tpm_limit: "5" }, { scopes: ["admin"] }]) {
        const res = await h.call("POST", `/api/v1/keys/${k.id}/limits`, { body });
        expect(res.status, JSON.stringify(body)).toBe(400);
      }
      const unknown = await h.call("POST", "/api/v1/keys/key_nope/limits", { body: { rpm_limit: 5 } });
      expect(unknown).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
      expect(
        (await h.call("POST", `/api/v1/keys/${k.id}/limits`, { body: { rpm_limit: 5 }, key: k.key })).status,
      ).toBe(403);
    });

    it("refuses the request over rpm with 429, Retry-After and each API's error shape", async () => {
      const k = await key({ name: "app", scopes: ["inference"], rpm_limit: 2 });
      const chat = { model: "nope", messages: [{ role: "user", content: "hi" }] };
      for (let i = 0; i < 2; i++) {
        expect((await h.call("POST", "/v1/chat/completions", { body: chat, key: k.key })).status).toBe(404);
      }
      const refused = await h.gw.app.inject({
        method: "POST",
        url: "/v1/chat/completions",
        headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
        payload: JSON.stringify(chat),
      });
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers["retry-after"])).toBeGreaterThanOrEqual(29);
      expect(Number(refused.headers["retry-after"])).toBeLessThanOrEqual(30);
      expect(refused.json()).toMatchObject({
        error: {
          type: "rate_limit_error",
          code: "rate_limited",
          message: expect.stringMatching(/2 requests per minute.*retry in \d+ s/),
        },
      });
      const ollama = await h.gw.app.inject({
        method: "POST",
        url: "/api/chat",
        headers: { authorization: `Bearer ${k.key}`, "content-type": "application/json" },
        payload: JSON.stringify(chat),
      });
      expect(ollama.statusCode).toBe(429);
      expect(Number(ollama.headers["retry-after"])).toBeGreaterThan(0);
      expect(Object.keys(ollama.json())).toEqual(["error"]);
      expect(ollama.json().error).toMatch(/rate limit reached/);
      // Another key is not limited by this one's use.
      const other = await key({ name: "other", scopes: ["inference"], rpm_limit: 2 });
      expect((await h.call("POST", "/api/chat", { body: chat, key: other.key })).status).toBe(404);
      // Every request is metered, the refused ones too (as errors).
      const usage = await h.call("GET", "/api/v1/usage?group_by=key");
      expect(usage.status).toBe(200);
      expect(usage.body.groups).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ group: k.id, key_name: "app", requests: 4, errors: 4 }),
          expect.objectContaining({ group: other.id, key_name: "other", requests: 1 }),
        ]),
      );
    });

    it("sums the workspace's usage per model, key and day, and only the caller's workspace", async () => {
      const ws = (await h.gw.store.keys.list())[0]!.workspace_id;
      await h.gw.store.workspaces.insert({ id: "ws_team", name: "team", created_at: Date.now() });
      const reader = await key({ name: "dash", scopes: ["read"] });
      const team = await key({ name: "team-reader", scopes: ["read"], workspace: "team" });
      const now = Date.now();
      const row = (id: string, over: Record<string, unknown> = {}) => ({
        id,
        key_id: reader.id,
        workspace_id: ws,
        model: "smollm2",
        machine_id: "m1",
        status: 200,
        prompt_tokens: 10,
        completion_tokens: 4,
        latency_ms: 100,
        ttfb_ms: 10,
        started_at: now - 1000,
        ...over,
      });
      await h.gw.store.usage.insertMany([
        row("a"),
        row("b", { latency_ms: 300, status: 502 }),
        row("c", { model: "llama", started_at: now - DAY - 1000 }),
        row("d", { workspace_id: "ws_team", key_id: team.id }),
      ]);
      const today = await h.call("GET", "/api/v1/usage", { key: reader.key });
      expect(today.status).toBe(200);
      expect(today.body.group_by).toBe("model");
      expect(Date.parse(today.body.until) - Date.parse(today.body.since)).toBe(DAY);
      expect(today.body.groups).toEqual([
        {
          group: "smollm2",
          requests: 2,
          prompt_tokens: 20,
          completion_tokens: 8,
          errors: 1,
          p50_latency_ms: 100,
          p95_latency_ms: 300,
          // Nothing measured these requests' energy: unknown, not zero.
          energy_wh: null,
          co2e_g: null,
        },
      ]);
      const since = new Date(now - 2 * DAY).toISOString();
      const byDay = await h.call("GET", `/api/v1/usage?group_by=day&since=${since}`, { key: reader.key });
      expect(
        byDay.body.groups.map((g: { group: string; requests: number }) => [g.group, g.requests]),
      ).toEqual(
        [
          [new Date(now - DAY - 1000).toISOString().slice(0, 10), 1],
          [new Date(now - 1000).toISOString().slice(0, 10), 2],
        ].reduce<[string, number][]>((acc, [d, n]) => {
          // Both rows may fall on one UTC day right after midnight.
          const last = acc.at(-1);
          if (last && last[0] === d) last[1] += n as number;
          else acc.push([d as string, n as number]);
          return acc;
        }, []),
      );
      const theirs = await h.call("GET", `/api/v1/usage?since=${since}`, { key: team.key });
      expect(theirs.body.groups).toEqual([expect.objectContaining({ group: "smollm2", requests: 1 })]);

      // By machine: a machine no longer known shows no name; requests no machine answered group as "".
      await h.gw.store.usage.insertMany([row("e", { machine_id: null, status: 404 })]);
      const byMachine = await h.call("GET", `/api/v1/usage?group_by=machine&since=${since}`, {
        key: reader.key,
      });
      expect(
        byMachine.body.groups.map((g: { group: string; machine_name: string | null; requests: number }) => [
          g.group,
          g.machine_name,
          g.requests,
        ]),
      ).toEqual([
        ["", null, 1],
        ["m1", null, 3],
      ]);
    });

    it("groups every workspace's usage by workspace for the operator only, and so does the carbon report", async () => {
      const ws = (await h.gw.store.keys.list())[0]!.workspace_id;
      await h.gw.store.workspaces.insert({ id: "ws_team", name: "team", created_at: Date.now() });
      const team = await key({ name: "team-reader", scopes: ["read"], workspace: "team" });
      const now = Date.now();
      const row = (id: string, workspace: string, co2e: number | null) => ({
        id,
        key_id: team.id,
        workspace_id: workspace,
        model: "smollm2",
        machine_id: "m1",
        status: 200,
        prompt_tokens: 10,
        completion_tokens: 4,
        latency_ms: 100,
        ttfb_ms: 10,
        started_at: now - 1000,
        ...(co2e === null
          ? {}
          : { energy_wh: co2e * 10, energy_method: "util_tdp", energy_confidence: "low", co2e_g: co2e }),
        ...(co2e === null ? {} : { intensity_confidence: "medium", grid_zone: "FR", grid_intensity: 56 }),
      });
      await h.gw.store.usage.insertMany([
        row("a", ws, 0.5),
        row("b", "ws_team", 0.25),
        row("c", "ws_team", null),
      ]);
      const all = await h.call("GET", "/api/v1/usage?group_by=workspace");
      expect(all.status).toBe(200);
      expect(
        all.body.groups.map((g: { workspace_name: string; requests: number; co2e_g: number | null }) => [
          g.workspace_name,
          g.requests,
          g.co2e_g,
        ]),
      ).toEqual([
        ["default", 1, 0.5],
        ["team", 2, 0.25],
      ]);
      const refused = await h.call("GET", "/api/v1/usage?group_by=workspace", { key: team.key });
      expect(refused).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });

      const report = await h.call("GET", "/api/v1/carbon/report?by=workspace");
      expect(report.status).toBe(200);
      expect(report.body.totals).toMatchObject({
        answers: 3,
        co2e_g: 0.75,
        coverage: { high: 0, medium: 0, low: 1 },
      });
      expect(report.body.rows.map((r: { name: string; measured: number }) => [r.name, r.measured])).toEqual([
        ["default", 1],
        ["team", 1],
      ]);
      // SCI: the gCO2e of the answers with a footprint per 1,000 of their tokens (14 each here).
      expect(report.body.totals.sci_g_per_1k_tokens).toBeCloseTo((0.75 / 28) * 1000, 9);
      const theirs = await h.call("GET", "/api/v1/carbon/report", { key: team.key });
      expect(theirs.body).toMatchObject({ workspace: "team", totals: { answers: 2, co2e_g: 0.25 } });
      expect((await h.call("GET", "/api/v1/carbon/report?by=workspace", { key: team.key })).status).toBe(403);
    });

    it("needs scope read, and says what is wrong with since, until and group_by", async () => {
      const infer = await key({ name: "app", scopes: ["inference"] });
      expect((await h.call("GET", "/api/v1/usage", { key: infer.key })).status).toBe(403);
      expect((await h.call("GET", "/api/v1/usage", { key: null })).status).toBe(401);
      const bad = await h.call("GET", "/api/v1/usage?since=yesterday");
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toMatch(/`since` is not a time: use ISO 8601/);
      const backwards = await h.call("GET", "/api/v1/usage?since=2026-02-01&until=2026-01-01");
      expect(backwards.body.error.message).toMatch(/`since` must be before `until`/);
      expect((await h.call("GET", "/api/v1/usage?group_by=gpu")).status).toBe(400);
      expect((await h.call("GET", "/api/v1/usage?extra=1")).status).toBe(400);
    });
  });

  it(`writes every usage row on a clean shutdown, none lost (${dialect.name})`, async () => {
    const config = dialect.config();
    const log = createLogger({ name: "test", level: "silent", pretty: false });
    // 250 requests of one key at once, on purpose: no bound on a key's requests under way here.
    const gw = await buildGateway(gatewayConfig({ dataDir: tempDir("b9-gwt-"), keyConcurrency: null }), {
      store: await Store.open(config),
      log,
    });
    const call = (i: number) =>
      gw.app.inject({
        method: "POST",
        url: i % 2 ? "/v1/completions" : "/api/generate",
        headers: { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" },
        payload: JSON.stringify({ model: `m${i % 3}`, prompt: "hi" }),
      });
    const answers = await Promise.all(Array.from({ length: 250 }, (_, i) => call(i)));
    expect(answers.every((a) => a.statusCode === 404)).toBe(true);
    await gw.close();
    const store = await Store.open(config);
    try {
      const groups = await store.usage.summarize({
        workspaceId: (await store.keys.list())[0]!.workspace_id,
        since: 0,
        until: Date.now() + 1,
        groupBy: "model",
      });
      expect(groups.map((g) => [g.group, g.requests, g.errors])).toEqual([
        ["m0", 84, 84],
        ["m1", 83, 83],
        ["m2", 83, 83],
      ]);
    } finally {
      await store.close();
    }
  });
}
