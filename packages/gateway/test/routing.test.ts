import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  inferenceKey,
  initAgent,
  runsBuiltinEngine,
  startAgent,
  startGateway,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * Requests through the gateway: the real `openai` client → b9gateway → agent channel → b9agent →
 * builtin engine with the real SmolLM2. Two agents serve the model, so failures can be tested.
 */

let gw: GatewayProc;
const agents: { proc: AgentProc; token: string }[] = [];
let key: string;

async function serve(name: string) {
  const path = await initAgent(gw, { name });
  const cfg = YAML.parse(readFileSync(path, "utf8"));
  cfg.models = { allowed_dirs: [dirname(testModelPath())] };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  const proc = await startAgent(path);
  const token = cfg.machine.token as string;
  const call = (p: string, body: unknown) =>
    fetch(proc.controlUrl + p, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  expect((await call("/inference/pull", { model: "smollm2", source: testModelPath() })).status).toBe(201);
  expect((await call("/inference/start", { model: "smollm2", context_size: 2048 })).status).toBe(200);
  agents.push({ proc, token });
}

async function servingCount(): Promise<number> {
  const { machines } = (
    await gw.api<{
      machines: { inference: { models: { name: string; state: string }[] } | null; status: string }[];
    }>("GET", "/api/v1/machines")
  ).body;
  return machines.filter(
    (m) =>
      m.status === "READY" && m.inference?.models.some((x) => x.name === "smollm2" && x.state === "ready"),
  ).length;
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  await serve("worker-a");
  await serve("worker-b");
  key = await inferenceKey(gw);
  await waitFor(async () => (await servingCount()) === 2, {
    what: "both machines serving smollm2",
    timeoutMs: 20_000,
  });
}, 120_000);

afterAll(async () => {
  for (const a of agents) await a.proc.proc.stop();
  await gw?.proc.stop();
});

const client = () => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });

describe("OpenAI API through the gateway", () => {
  it("lists, chats, streams and embeds with the real openai client", async () => {
    expect((await client().models.list()).data.map((m) => m.id)).toEqual(["smollm2"]);
    const chat = await client().chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "What is the capital of France?" }],
      max_tokens: 16,
      temperature: 0,
    });
    expect(chat.choices[0]?.message.content).toMatch(/Paris/);
    let text = "";
    let chunks = 0;
    for await (const c of await client().chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Name three colours." }],
      max_tokens: 20,
      stream: true,
    })) {
      text += c.choices[0]?.delta?.content ?? "";
      chunks++;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(text.length).toBeGreaterThan(0);
    const emb = await client().embeddings.create({ model: "smollm2", input: "hello" });
    expect(emb.data[0]?.embedding).toHaveLength(576);

    const metrics = await (
      await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.adminKey}` } })
    ).text();
    expect(metrics).toMatch(/beta9_inference_requests_total\{model="smollm2",status="200"\} [3-9]/);
    expect(metrics).toMatch(/beta9_inference_time_to_first_byte_seconds_count\{model="smollm2"\} [3-9]/);
  });

  it("answers errors in OpenAI's format: unknown model 404, no key 401, wrong scope 403", async () => {
    await expect(
      client().chat.completions.create({ model: "nope", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({
      status: 404,
      code: "model_not_found",
    });
    const anon = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "b9_not-a-key", maxRetries: 0 });
    await expect(anon.models.list()).rejects.toMatchObject({ status: 401 });
    const readKey = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ro", scopes: ["read"] }))
      .body.key;
    const ro = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: readKey, maxRetries: 0 });
    await expect(
      ro.chat.completions.create({ model: "smollm2", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 403 });
  });

  it("retries a request whose machine's engine died on the other machine", async () => {
    // Kill worker-a's engine; until its next heartbeat the gateway still thinks it serves.
    const a = agents[0]!;
    const enginePid = childPids(a.proc.proc.child.pid!).find((p) => runsBuiltinEngine(argsOf(p)));
    expect(enginePid).toBeDefined();
    process.kill(enginePid!, "SIGKILL");
    const answers = await Promise.all(
      Array.from({ length: 4 }, () =>
        client().chat.completions.create({
          model: "smollm2",
          messages: [{ role: "user", content: "Say yes." }],
          max_tokens: 4,
        }),
      ),
    );
    for (const r of answers) expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
    await waitFor(async () => (await servingCount()) === 1, {
      what: "the gateway to learn worker-a stopped serving",
    });
  });

  it("ends a stream with an error when its machine dies mid-answer, never hangs", async () => {
    const stream = await client().chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Count from 1 to 1000, one number per line." }],
      max_tokens: 1500,
      temperature: 0,
      stream: true,
    });
    let chunks = 0;
    const started = Date.now();
    let failure: unknown;
    try {
      for await (const _ of stream) {
        if (++chunks === 5) agents[1]!.proc.proc.child.kill("SIGKILL");
      }
    } catch (err) {
      failure = err;
    }
    expect(chunks).toBeGreaterThanOrEqual(5);
    expect(Date.now() - started).toBeLessThan(20_000);
    // The gateway ends the SSE stream with an error event, which the openai client raises.
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect(String((failure as Error).message)).toMatch(/went away/);
  });
});

function childPids(pid: number): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" });
  return out
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter(([, ppid]) => ppid === pid)
    .map(([p]) => p!);
}

function argsOf(pid: number): string {
  return execFileSync("ps", ["-o", "args=", "-p", String(pid)], { encoding: "utf8" });
}
