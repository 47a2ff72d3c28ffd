import type { DeploymentPullEvent } from "@beta9/protocol";
import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
  TEST_MODEL,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectShape, fixtureLines } from "../src/routes/ollama/testing/fixtures.ts";
import { type ModelServer, startModelServer } from "./model-server.ts";

/*
 * Pre-pulling a deployment for real: b9gateway → agent channel → b9agent, which downloads the test
 * model from a local HTTP server (hubs are unreachable here) into its store, progress streamed back.
 */

let gw: GatewayProc;
let worker: ModelAgent;
let files: ModelServer;
let key: string;

beforeAll(async () => {
  files = await startModelServer(testModelPath());
  // The default heartbeat interval: a machine busy loading a model still answers in time.
  gw = await startGateway();
  worker = await startModelAgent(gw);
  key = await inferenceKey(gw);
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
  await files?.close();
});

async function pull(
  name: string,
  k = key,
): Promise<{ status: number; type: string | null; events: DeploymentPullEvent[]; body: string }> {
  const res = await fetch(`${gw.url}/api/v1/deployments/${encodeURIComponent(name)}/pull`, {
    method: "POST",
    headers: { authorization: `Bearer ${k}` },
  });
  const body = await res.text();
  const ndjson = res.headers.get("content-type")?.startsWith("application/x-ndjson");
  const events = ndjson
    ? body
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as DeploymentPullEvent)
    : [];
  return { status: res.status, type: res.headers.get("content-type"), events, body };
}

async function agentModels(): Promise<{ name: string; state: string }[]> {
  const res = await worker.control("GET", "/inference/status");
  return ((await res.json()) as { models: { name: string; state: string }[] }).models;
}

describe("POST /api/v1/deployments/:name/pull", () => {
  it("pulls the model onto the machine that will serve it, with progress, and loads nothing", async () => {
    const url = files.url("smollm2.gguf");
    expect((await gw.api("POST", "/api/v1/deployments", { name: "tiny", source: url })).status).toBe(201);

    const { status, type, events } = await pull("tiny");
    expect(status).toBe(200);
    expect(type).toMatch(/^application\/x-ndjson/);
    const where = { machine_id: expect.any(String), machine_name: "worker" };
    expect(events[0]).toEqual({ status: "pulling on worker", ...where });
    expect(events).toContainEqual({ status: "pulling manifest", ...where });
    const bytes = events.filter((e) => e.status === "pulling tiny");
    expect(bytes.length).toBeGreaterThanOrEqual(2);
    for (const e of bytes) expect(e).toMatchObject({ total: TEST_MODEL.bytes, ...where });
    expect(bytes.at(-1)!.completed).toBe(TEST_MODEL.bytes);
    const completed = bytes.map((e) => e.completed ?? 0);
    expect(completed).toEqual([...completed].sort((a, b) => a - b));
    expect(events).toContainEqual({ status: "verifying sha256 digest", ...where });
    expect(events.at(-1)).toEqual({
      status: "success",
      model: expect.objectContaining({ name: "tiny", sha256: TEST_MODEL.sha256, size: TEST_MODEL.bytes }),
      machines: [{ id: events[0]!.machine_id, name: "worker" }],
    });
    expect(files.requests.filter((p) => p === "/smollm2.gguf")).toHaveLength(1);
    // On disk, not loaded: scale to zero still holds.
    expect(await agentModels()).toEqual([]);

    // The first request loads what was pulled; nothing is downloaded again.
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    const chat = await client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: "What is the capital of France?" }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(chat.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(files.requests.filter((p) => p === "/smollm2.gguf")).toHaveLength(1);

    // Pulling a deployment that runs already says where, and pulls nothing.
    const again = await pull("tiny");
    expect(again.events).toEqual([
      { status: "already on worker", ...where },
      { status: "success", model: null, machines: [{ id: events[0]!.machine_id, name: "worker" }] },
    ]);
    expect(files.requests.filter((p) => p === "/smollm2.gguf")).toHaveLength(1);

    // Removing the deployment stops what runs for it on the machine.
    expect(await agentModels()).toEqual([expect.objectContaining({ name: "tiny", state: "ready" })]);
    expect((await gw.api("DELETE", "/api/v1/deployments/tiny")).status).toBe(204);
    await waitFor(async () => (await agentModels()).length === 0, {
      what: "the removed deployment's replica to stop on the agent",
      timeoutMs: 10_000,
    });
  }, 90_000);

  it("refuses before streaming: unknown deployment, no machine fits, a key without the scope", async () => {
    const unknown = await pull("no-such-model");
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: { code: "not_found" } });

    await gw.api("POST", "/api/v1/deployments", {
      name: "needs-gpu",
      source: testModelPath(),
      gpu: "nvidia",
    });
    const noFit = await pull("needs-gpu");
    expect(noFit.status).toBe(503);
    expect(JSON.parse(noFit.body).error).toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/no ready machine in pool external has a nvidia GPU/),
    });

    const read = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ro", scopes: ["read"] }))
      .body.key;
    const refused = await pull("needs-gpu", read);
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: "scope_missing" } });
  });

  it("ends with an error line carrying the agent's code when the source fails", async () => {
    await gw.api("POST", "/api/v1/deployments", { name: "broken", source: files.url("missing.bin") });
    const { status, events } = await pull("broken");
    expect(status).toBe(200);
    expect(events[0]).toMatchObject({ status: "pulling on worker" });
    expect(events).toContainEqual(
      expect.objectContaining({ status: expect.stringMatching(/^could not pull on worker: /) }),
    );
    const last = events.at(-1)!;
    expect(last.status).toBe("error");
    expect(last.error?.code).toBe("download_failed");
    expect(last.error?.message).toMatch(/404/);
  });
});

describe("Ollama's POST /api/pull at the gateway, with the real ollama client", () => {
  const ollama = (k = key) => new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${k}` } });
  const real = fixtureLines("pull-stream.ndjson");

  it("pre-pulls a deployment, streaming Ollama's own progress shape; stream:false answers success", async () => {
    await gw.api("POST", "/api/v1/deployments", { name: "olla", source: files.url("olla.gguf") });
    const lines = [];
    for await (const line of await ollama().pull({ model: "olla", stream: true })) lines.push(line);

    expect(lines[0]).toEqual(fixtureLines("pull-unknown.ndjson")[0]); // {"status":"pulling manifest"}
    const layer = real.find((l) => l.completed !== undefined)!;
    const bytes = lines.filter((l) => l.total !== undefined);
    expect(bytes.length).toBeGreaterThanOrEqual(2);
    // No digest is known before the bytes arrive (the deployment names none): Ollama omits it then.
    for (const l of bytes) expectShape(l, layer, { omit: ["digest"] });
    expect(bytes.at(-1)).toEqual({
      status: "pulling olla",
      total: TEST_MODEL.bytes,
      completed: TEST_MODEL.bytes,
    });
    expect(lines.map((l) => l.status)).toContain("verifying sha256 digest");
    expect(lines.at(-1)).toEqual(real.at(-1)); // {"status":"success"}
    expect(files.requests.filter((p) => p === "/olla.gguf")).toHaveLength(1);

    // Again, not streamed: one object; the machine finds the bytes it has and fetches nothing.
    expect(await ollama().pull({ model: "olla" })).toEqual({ status: "success" });
    expect(files.requests.filter((p) => p === "/olla.gguf")).toHaveLength(1);

    // Listed while scaled to zero; the first chat loads it, under Ollama's default tag too.
    expect((await ollama().list()).models.map((m) => m.name)).toContain("olla");
    expect((await ollama().ps()).models.map((m) => m.name)).not.toContain("olla");
    const chat = await ollama().chat({
      model: "olla:latest",
      messages: [{ role: "user", content: "What is the capital of France?" }],
      options: { num_predict: 8, temperature: 0 },
    });
    expect(chat.message.content.length).toBeGreaterThan(0);
    expect((await ollama().ps()).models.map((m) => m.name)).toContain("olla");
    expect(files.requests.filter((p) => p === "/olla.gguf")).toHaveLength(1);
    expect((await gw.api("DELETE", "/api/v1/deployments/olla")).status).toBe(204);
    await waitFor(async () => !(await agentModels()).some((m) => m.name === "olla"), {
      what: "olla to stop on the agent",
      timeoutMs: 10_000,
    });
  }, 90_000);

  it("deploys a name it does not know from Ollama's registry (admin key), and takes it back when that fails", async () => {
    // An inference key may pull what is deployed, not deploy.
    await expect(ollama().pull({ model: "qwen2.5:0.5b" })).rejects.toMatchObject({
      status_code: 403,
      error: expect.stringMatching(
        /admin scope.*b9 model deploy qwen2\.5:0\.5b --source ollama:qwen2\.5:0\.5b/,
      ),
    });

    // This machine has no Ollama engine: the pull fails there, in Ollama's error line.
    const stream = await ollama(gw.adminKey).pull({ model: "qwen2.5:0.5b", stream: true });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const line of stream) seen.push(line.status);
      })(),
    ).rejects.toThrow(/ollama/i);
    expect(seen[0]).toBe("pulling manifest");
    const deployments = (await gw.api<{ deployments: { name: string }[] }>("GET", "/api/v1/deployments"))
      .body;
    expect(deployments.deployments.map((d) => d.name)).not.toContain("qwen2.5:0.5b");

    await expect(ollama(gw.adminKey).pull({ model: "bad name!" })).rejects.toMatchObject({
      status_code: 400,
    });
  });
});
