import {
  type AgentProc,
  builtinEngineModel,
  builtinEnginePort,
  type GatewayProc,
  startGateway,
  startModelAgent,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * Key limits and usage metering end to end: the real `openai` and `ollama` clients → b9gateway →
 * agent channel → b9agent → builtin engine with the real SmolLM2, served under two names so usage
 * per model can be told apart. Each test uses keys of its own, so its counts are its own.
 */

let gw: GatewayProc;
let agent: AgentProc;

// biome-ignore lint/suspicious/noExplicitAny: the usage answer's shape is checked by each assertion.
type Json = any;

async function key(body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await gw.api<{ id: string; key: string }>("POST", "/api/v1/keys", body);
  expect(res.status).toBe(201);
  return res.body;
}

async function usage(query: string, apiKey = gw.adminKey): Promise<Json> {
  const res = await gw.api<Json>("GET", `/api/v1/usage?${query}`, undefined, apiKey);
  expect(res.status).toBe(200);
  return res.body;
}

const openai = (apiKey: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0 });
const ollama = (apiKey: string) =>
  new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${apiKey}` } });
const hi = [{ role: "user" as const, content: "What is the capital of France?" }];

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const worker = await startModelAgent(gw);
  agent = worker.agent;
  for (const model of ["smollm2", "smollm2-b"]) await worker.serve(model);
  await waitFor(async () => (await openai(gw.adminKey).models.list()).data.length === 2, {
    what: "the gateway to list both models",
    timeoutMs: 30_000,
  });
}, 180_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("usage metering and key limits through the gateway", () => {
  it("meters requests through the openai client and the Ollama API, per model and per key", async () => {
    const since = new Date(Date.now() - 1000).toISOString();
    const app = await key({ name: "app", scopes: ["inference"] });
    const oa = openai(app.key);
    const whole = await oa.chat.completions.create({ model: "smollm2", messages: hi, max_tokens: 8 });
    expect(whole.usage?.completion_tokens).toBeGreaterThan(0);
    let streamed = "";
    for await (const c of await oa.chat.completions.create({
      model: "smollm2",
      messages: hi,
      max_tokens: 8,
      stream: true,
    }))
      streamed += c.choices[0]?.delta?.content ?? "";
    expect(streamed.length).toBeGreaterThan(0);
    await oa.completions.create({ model: "smollm2", prompt: "The capital of France is", max_tokens: 4 });
    await oa.embeddings.create({ model: "smollm2", input: "hello" });

    const ol = ollama(app.key);
    const chat = await ol.chat({ model: "smollm2-b", messages: hi, options: { num_predict: 8 } });
    expect(chat.done).toBe(true);
    const parts = [];
    for await (const p of await ol.generate({
      model: "smollm2-b",
      prompt: "The capital of France is",
      options: { num_predict: 6 },
      stream: true,
    }))
      parts.push(p);
    expect(parts.at(-1)?.done).toBe(true);
    await ol.embed({ model: "smollm2-b", input: ["hello", "world"] });

    const byModel = await usage(`since=${since}&group_by=model`);
    expect(byModel.group_by).toBe("model");
    const groups = Object.fromEntries(byModel.groups.map((g: Json) => [g.group, g]));
    expect(Object.keys(groups).sort()).toEqual(["smollm2", "smollm2-b"]);
    expect(groups.smollm2).toMatchObject({ requests: 4, errors: 0 });
    expect(groups["smollm2-b"]).toMatchObject({ requests: 3, errors: 0 });
    for (const g of byModel.groups) {
      expect(g.prompt_tokens).toBeGreaterThan(0);
      expect(g.completion_tokens).toBeGreaterThan(0);
      expect(g.p50_latency_ms).toBeGreaterThan(0);
      expect(g.p95_latency_ms).toBeGreaterThanOrEqual(g.p50_latency_ms);
    }
    const byKey = await usage(`since=${since}&group_by=key`);
    expect(byKey.groups).toEqual([expect.objectContaining({ group: app.id, key_name: "app", requests: 7 })]);
    // Where they ran: the one machine, by its id and name.
    const byMachine = await usage(`since=${since}&group_by=machine`);
    const [machine] = (await gw.api<{ machines: { id: string; name: string }[] }>("GET", "/api/v1/machines"))
      .body.machines;
    expect(byMachine.groups).toEqual([
      expect.objectContaining({ group: machine!.id, machine_name: machine!.name, requests: 7 }),
    ]);
  });

  it("hands the usage chunk only to a client that asked for it, and meters the stream either way", async () => {
    const quiet = await key({ name: "quiet", scopes: ["inference"] });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${quiet.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "smollm2", messages: hi, max_tokens: 6, stream: true }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const events = (await res.text())
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => e.slice(6));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) {
      expect(c.choices.length).toBeGreaterThan(0);
      expect(c.usage ?? null).toBeNull();
    }
    const [metered] = (await usage("group_by=key")).groups.filter((g: Json) => g.group === quiet.id);
    expect(metered).toMatchObject({ requests: 1, errors: 0 });
    expect(metered.prompt_tokens).toBeGreaterThan(0);
    expect(metered.completion_tokens).toBeGreaterThan(0);

    // A client that asks gets the chunk, and the gateway meters exactly what it says.
    const asks = await key({ name: "asks", scopes: ["inference"] });
    const all = [];
    for await (const c of await openai(asks.key).chat.completions.create({
      model: "smollm2",
      messages: hi,
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    }))
      all.push(c);
    const last = all.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.prompt_tokens).toBeGreaterThan(0);
    const [theirs] = (await usage("group_by=key")).groups.filter((g: Json) => g.group === asks.id);
    expect(theirs).toMatchObject({
      requests: 1,
      prompt_tokens: last.usage!.prompt_tokens,
      completion_tokens: last.usage!.completion_tokens,
    });
  });

  it("refuses the third request of a key with rpm 2: 429 with Retry-After, in each API's shape", async () => {
    const limited = await key({ name: "limited", scopes: ["inference"], rpm_limit: 2 });
    expect(limited).toMatchObject({ rpm_limit: 2, tpm_limit: null });
    const oa = openai(limited.key);
    for (let i = 0; i < 2; i++) {
      const r = await oa.chat.completions.create({ model: "smollm2", messages: hi, max_tokens: 2 });
      expect(r.choices[0]?.message.content?.length).toBeGreaterThan(0);
    }
    const third = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${limited.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "smollm2", messages: hi, max_tokens: 2 }),
    });
    expect(third.status).toBe(429);
    const retryAfter = Number(third.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(await third.json()).toMatchObject({ error: { type: "rate_limit_error", code: "rate_limited" } });
    await expect(
      oa.chat.completions.create({ model: "smollm2", messages: hi, max_tokens: 2 }),
    ).rejects.toMatchObject({ status: 429, code: "rate_limited", type: "rate_limit_error" });
    await expect(ollama(limited.key).chat({ model: "smollm2", messages: hi })).rejects.toMatchObject({
      status_code: 429,
      error: expect.stringMatching(/rate limit reached: this API key may make 2 requests per minute/),
    });
    // A key without limits goes on meanwhile.
    const free = await key({ name: "free", scopes: ["inference"] });
    expect(
      (await openai(free.key).chat.completions.create({ model: "smollm2", messages: hi, max_tokens: 2 })).id,
    ).toBeTruthy();
    const [metered] = (await usage("group_by=key")).groups.filter((g: Json) => g.group === limited.id);
    expect(metered).toMatchObject({ requests: 5, errors: 3 });
  });

  it("charges the answer's tokens and refuses a key in token debt until it refills", async () => {
    const small = await key({ name: "small", scopes: ["inference"], tpm_limit: 5 });
    const first = await ollama(small.key).generate({
      model: "smollm2",
      prompt: "The capital of France is",
      options: { num_predict: 8 },
    });
    expect(first.eval_count).toBeGreaterThan(0);
    // The answer used more than five tokens: the key owes them, and waits minutes, not seconds.
    const refused = await fetch(`${gw.url}/api/generate`, {
      method: "POST",
      headers: { authorization: `Bearer ${small.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "smollm2", prompt: "Hi", options: { num_predict: 2 } }),
    });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(60);
    expect(((await refused.json()) as { error: string }).error).toMatch(/5 tokens per minute/);
  });

  it("stops the generation when an openai client aborts a stream, and meters it as the client leaving", async () => {
    const engine = builtinEnginePort(agent.proc.child.pid!);
    const before = (await builtinEngineModel(engine, "smollm2")).cancelled;
    const leaver = await key({ name: "leaver", scopes: ["inference"] });
    const stream = await openai(leaver.key).chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Count from 1 to 1000, one number per line." }],
      max_tokens: 1500,
      temperature: 0,
      stream: true,
    });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 3) break;
    await waitFor(async () => (await builtinEngineModel(engine, "smollm2")).cancelled === before + 1, {
      what: "the engine to stop the generation",
      timeoutMs: 5_000,
    });
    await waitFor(
      async () =>
        (await usage("group_by=key")).groups.some((g: Json) => g.group === leaver.id && g.errors === 1),
      { what: "the aborted request to be metered" },
    );
  });

  it("shows a workspace only its own usage; the operator may read any workspace's", async () => {
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "team" })).status).toBe(201);
    const team = await key({ name: "team-app", scopes: ["inference", "read"], workspace: "team" });
    // A hand-served model is the operator's: the team's request is refused, and metered as its own.
    await expect(
      openai(team.key).chat.completions.create({ model: "smollm2", messages: hi, max_tokens: 2 }),
    ).rejects.toMatchObject({ status: 404 });
    const theirs = await usage("group_by=key", team.key);
    expect(theirs.groups).toEqual([
      expect.objectContaining({ group: team.id, key_name: "team-app", requests: 1, errors: 1 }),
    ]);
    const ours = await usage("group_by=key");
    expect(ours.groups.map((g: Json) => g.group)).not.toContain(team.id);
    expect(ours.groups.length).toBeGreaterThan(3);
    // A key of the team cannot see the default workspace's usage by any query.
    const byModel = await usage("group_by=model", team.key);
    expect(byModel.groups).toEqual([expect.objectContaining({ group: "smollm2", requests: 1 })]);
    expect(byModel.workspace).toBe("team");
    const peek = await gw.api<Json>("GET", "/api/v1/usage?workspace=default", undefined, team.key);
    expect(peek).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
    // The operator (a key of default) reads the team's.
    const operator = await usage("group_by=key&workspace=team");
    expect(operator).toMatchObject({
      workspace: "team",
      groups: [expect.objectContaining({ group: team.id })],
    });
    const nowhere = await gw.api<Json>("GET", "/api/v1/usage?workspace=nowhere");
    expect(nowhere).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
  });
});
