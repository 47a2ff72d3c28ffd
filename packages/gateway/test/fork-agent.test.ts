import type { ChildProcess } from "node:child_process";
import { type GatewayProc, startGateway, testModelPath, waitFor } from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  freePort,
  KEEPALIVE_RUNNING,
  KEEPALIVE_STOPPED,
  FORK_MODEL as MODEL,
  REGISTER,
  recorded,
  replay as replayTo,
  startOllamaStandIn,
} from "./fork-replay.ts";

/*
 * The fork's Go agent's recorded requests (testdata/fork-agent) replayed against the real b9gateway,
 * its Ollama played by llama.cpp's server on loopback (see fork-replay.ts).
 */

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

let gw: GatewayProc;
let ollama: ChildProcess;
let ollamaPort: number;

const replay = (
  i: number,
  opts: { token: string; machineId?: string; ip?: string; port?: number; models?: string[] },
) => replayTo(gw.url, i, { ...opts, ip: opts.ip ?? "127.0.0.1", port: opts.port ?? ollamaPort });

async function joinToken(uses = 1): Promise<string> {
  return (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { uses })).body.token;
}

async function machine(id: string) {
  return (await gw.api<Json>("GET", `/api/v1/machines/${id}`)).body;
}

beforeAll(async () => {
  ollamaPort = await freePort();
  // The fork's machines stay known 300 s after a keepalive; here 20 s, so the test can see one lapse.
  [gw, ollama] = await Promise.all([
    startGateway({
      args: [
        "--heartbeat-interval",
        "1s",
        "--unhealthy-after",
        "2s",
        "--offline-after",
        "3s",
        "--keepalive-ttl",
        "20s",
      ],
    }),
    startOllamaStandIn({ host: "127.0.0.1", port: ollamaPort }),
  ]);
}, 90_000);

afterAll(async () => {
  ollama?.kill("SIGTERM");
  await gw?.proc.stop();
});

describe("a fork (Go) agent's recorded requests against the gateway", () => {
  it("registers with its bearer token and an empty k3s token, and answers the shape the fork reads", async () => {
    expect(recorded.map((r) => r.path)).toEqual([
      "/api/v1/machine/register",
      "/api/v1/machine/keepalive",
      "/api/v1/machine/keepalive",
      "/api/v1/machine/keepalive",
    ]);
    expect(JSON.parse(recorded[REGISTER]!.body).token).toBe("");
    const token = await joinToken();
    const reg = await replay(REGISTER, { token, machineId: "f0a0c001" });
    expect(reg.status).toBe(200);
    expect(reg.body).toMatchObject({ status: "ok", config: null, machine_state: { machine_id: "f0a0c001" } });
    const ka = await replay(KEEPALIVE_STOPPED, { token, machineId: "f0a0c001" });
    expect(ka).toMatchObject({ status: 200, body: { machine_state: { status: "ready" } } });
    const m = await machine("f0a0c001");
    expect(m).toMatchObject({
      status: "READY",
      connection: "keepalive",
      agent_version: "0.2.0-go",
      hardware: { cpu_cores: 2, memory_total_bytes: 23 * 2 ** 30 },
    });
  });

  it("binds the token to the first machine id: refused for another id, and spent", async () => {
    const token = await joinToken();
    expect((await replay(REGISTER, { token, machineId: "f0a0c002" })).status).toBe(200);
    // The same token registering or beating for another machine id: a replayed secret.
    const other = await replay(KEEPALIVE_STOPPED, { token, machineId: "f0a0c099" });
    expect(other).toMatchObject({ status: 403, body: { error: { code: "credential_machine_mismatch" } } });
    const again = await replay(REGISTER, { token, machineId: "f0a0c098" });
    expect(again.status).toBeGreaterThanOrEqual(400);
    expect((await machine("f0a0c098")).error?.code).toBe("not_found");
    // Its own machine restarting registers again with it.
    expect((await replay(REGISTER, { token, machineId: "f0a0c002" })).status).toBe(200);
    const wrong = await replay(KEEPALIVE_STOPPED, { token: "b9j_not-a-token", machineId: "f0a0c002" });
    expect(wrong.status).toBe(401);
  });

  it("routes the operator's OpenAI and Ollama clients to the Ollama its keepalive reports", async () => {
    const token = await joinToken();
    await replay(REGISTER, { token, machineId: "f0a0c003" });
    await replay(KEEPALIVE_STOPPED, { token, machineId: "f0a0c003" });
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.adminKey, maxRetries: 0 });
    expect((await openai.models.list()).data.map((m) => m.id)).not.toContain(MODEL);

    // Beats before each call, as the agent does every 60 s of the fork's 300 s (here 20 s).
    const beat = async () =>
      expect((await replay(KEEPALIVE_RUNNING, { token, machineId: "f0a0c003" })).status).toBe(200);
    await beat();
    expect((await openai.models.list()).data.map((m) => m.id)).toContain(MODEL);
    const chat = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(chat.choices).toHaveLength(1);
    expect(chat.usage?.prompt_tokens).toBeGreaterThan(0);
    // Metered against the fork machine, like any other answer.
    await waitFor(
      async () =>
        (
          await gw.api<{ groups: { group: string; prompt_tokens: number }[] }>(
            "GET",
            "/api/v1/usage?group_by=machine",
          )
        ).body.groups.some((g) => g.group === "f0a0c003" && g.prompt_tokens > 0),
      { what: "the answer's usage recorded against the fork machine", timeoutMs: 10_000 },
    );

    await beat();
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "Count to five." }],
      max_tokens: 8,
      stream: true,
    });
    let chunks = 0;
    for await (const c of stream) if (c.choices[0]?.delta?.content) chunks++;
    expect(chunks).toBeGreaterThan(0);

    const ollamaClient = new Ollama({ host: gw.url, headers: { authorization: `Bearer ${gw.adminKey}` } });
    await beat();
    const answer = await ollamaClient.chat({
      model: MODEL,
      messages: [{ role: "user", content: "Say hello." }],
      options: { num_predict: 8 },
    });
    expect(answer.done).toBe(true);
    expect(answer.prompt_eval_count).toBeGreaterThan(0);

    // Inference stopped on the machine: its model leaves the listing at the next keepalive.
    await replay(KEEPALIVE_STOPPED, { token, machineId: "f0a0c003" });
    expect((await openai.models.list()).data.map((m) => m.id)).not.toContain(MODEL);
  }, 60_000);

  it("keeps what a fork machine serves from other workspaces and from their deployments' names", async () => {
    const token = await joinToken();
    await replay(REGISTER, { token, machineId: "f0a0c004" });
    await replay(KEEPALIVE_RUNNING, { token, machineId: "f0a0c004", models: ["handmade:1b"] });
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "team" })).status).toBe(201);
    const teamAdmin = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "t",
        scopes: ["admin"],
        workspace: "team",
      })
    ).body.key;
    const team = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: teamAdmin, maxRetries: 0 });
    expect((await team.models.list()).data.map((m) => m.id)).not.toContain("handmade:1b");
    await expect(
      team.chat.completions.create({ model: "handmade:1b", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404, code: "model_not_found" });

    // Nor can its name be taken for a deployment while the machine serves it by hand…
    const taken = await gw.api<{ error: { message: string } }>(
      "POST",
      "/api/v1/deployments",
      { name: "handmade:1b", source: testModelPath() },
      teamAdmin,
    );
    expect(taken.status).toBe(409);
    expect(taken.body.error.message).toMatch(/started there by hand/);
    // …and a name deployed first stays the deployment's: the fork machine reporting it later serves
    // neither the team (whose requests wait for a replica of their own; the gateway cannot load one
    // on a fork agent) nor the operator.
    const dep = await gw.api(
      "POST",
      "/api/v1/deployments",
      { name: "deployed:1b", source: testModelPath() },
      teamAdmin,
    );
    expect(dep.status).toBe(201);
    await replay(KEEPALIVE_RUNNING, { token, machineId: "f0a0c004", models: ["handmade:1b", "deployed:1b"] });
    const ask = (key: string) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "deployed:1b",
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 4,
        }),
      });
    const asTeam = await ask(teamAdmin);
    expect(asTeam.status).toBe(503);
    expect(((await asTeam.json()) as { error: { message: string } }).error.message).toMatch(
      /READY|no machine/,
    );
    expect((await ask(gw.adminKey)).status).toBe(404);
  }, 60_000);

  it("refuses to aim the gateway at an address the machine does not own", async () => {
    const token = await joinToken();
    await replay(REGISTER, { token, machineId: "f0a0c005" });
    for (const ip of ["169.254.169.254", "10.1.2.3", "machine-f0a0c005"]) {
      await replay(KEEPALIVE_RUNNING, { token, machineId: "f0a0c005", ip, port: 80, models: ["aimed:1b"] });
      const m = await machine("f0a0c005");
      expect(m.inference.models).toEqual([
        expect.objectContaining({
          name: "aimed:1b",
          state: "unreachable",
          error: expect.stringMatching(/address/),
        }),
      ]);
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "aimed:1b", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(404);
    }
  });

  it("stays READY between keepalives far apart, and stops routing once they lapse", async () => {
    const token = await joinToken();
    await replay(REGISTER, { token, machineId: "f0a0c006" });
    await replay(KEEPALIVE_RUNNING, { token, machineId: "f0a0c006", models: ["lapse:1b"] });
    const since = Date.now();
    // Past the silence that makes a channel agent UNHEALTHY (2 s here), within half the keepalive TTL.
    await waitFor(async () => Date.now() - since > 3_000, { what: "3 s", timeoutMs: 5_000, intervalMs: 200 });
    expect((await machine("f0a0c006")).status).toBe("READY");
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.adminKey, maxRetries: 0 });
    expect((await openai.models.list()).data.map((m) => m.id)).toContain("lapse:1b");
    await waitFor(async () => (await machine("f0a0c006")).status === "UNHEALTHY", {
      what: "the fork machine to turn UNHEALTHY after half its keepalive TTL",
      timeoutMs: 15_000,
    });
    await expect(
      openai.chat.completions.create({ model: "lapse:1b", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404 });
    // Its next keepalive brings it back.
    await replay(KEEPALIVE_RUNNING, { token, machineId: "f0a0c006", models: ["lapse:1b"] });
    expect((await machine("f0a0c006")).status).toBe("READY");
  }, 40_000);
});
