import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { CHANNEL_PATH, CHANNEL_PROTOCOL, MACHINE_ID_HEADER } from "@beta9/protocol";
import {
  type GatewayProc,
  inferenceKey,
  initAgent,
  type ModelAgent,
  startGateway,
  startModelAgent,
  waitFor,
  withGatewayDb,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * Security events and inference requests in the audit log, on the real gateway with a real agent,
 * builtin engine and SmolLM2. Refusals are made the way an attacker would: forged keys, a key beyond
 * its rights, a bad join token, and a real machine's credential on the agent channel under another
 * machine's id (a real client of the channel protocol that lies).
 */

interface Event {
  action: string;
  outcome: string;
  actor_type: string;
  actor_id: string | null;
  workspace_id: string | null;
  resource: string | null;
  request_id: string | null;
  details: string;
}

let gw: GatewayProc;
let worker: ModelAgent;
let key: string;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "audited" });
  await worker.serve("smollm2");
  key = await inferenceKey(gw);
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

function events(where: string, ...params: string[]): Event[] {
  return withGatewayDb(
    gw,
    (db) =>
      db
        .prepare(`SELECT * FROM audit_events WHERE ${where} ORDER BY seq`)
        .all(...params) as unknown as Event[],
  );
}

/** Enqueued events are written in batches: wait for the one a request made. */
async function eventOf(
  requestId: string,
  action: string,
): Promise<Event & { facts: Record<string, unknown> }> {
  let found: Event | undefined;
  await waitFor(
    () => {
      found = events("request_id = ? AND action = ?", requestId, action)[0];
      return found !== undefined;
    },
    { what: `the ${action} event of ${requestId}`, timeoutMs: 20_000 },
  );
  return { ...found!, facts: JSON.parse(found!.details) as Record<string, unknown> };
}

/** Whether `text` is anywhere in the gateway's database file (its WAL included). */
function inDatabase(text: string): boolean {
  const files = ["beta9.db", "beta9.db-wal"].map((f) => join(gw.dataDir, f));
  return files.some((f) => {
    try {
      return readFileSync(f).includes(Buffer.from(text));
    } catch {
      return false;
    }
  });
}

function post(path: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(gw.url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

describe("the audit log's security events", () => {
  it("records a forged API key as refused, keeping only its HMAC", async () => {
    const forged = "b9_forged0123456789abcdefforged0123456789";
    const res = await post(
      "/v1/chat/completions",
      { model: "smollm2", messages: [{ role: "user", content: "hi" }] },
      { authorization: `Bearer ${forged}`, "x-request-id": "sec-forged" },
    );
    expect(res.status).toBe(401);
    const e = await eventOf("sec-forged", "auth.refused");
    expect(e).toMatchObject({ outcome: "refused", actor_type: "anonymous" });
    expect(e.facts).toMatchObject({ code: "api_key_invalid", route: "POST /v1/chat/completions" });
    expect(e.facts.credential).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(inDatabase(forged)).toBe(false);

    // The Ollama API answers in its own error shape; the refusal is recorded the same.
    const ollama = await post(
      "/api/chat",
      { model: "smollm2", messages: [{ role: "user", content: "hi" }] },
      { authorization: `Bearer ${forged}`, "x-request-id": "sec-forged-ollama" },
    );
    expect(ollama.status).toBe(401);
    const o = await eventOf("sec-forged-ollama", "auth.refused");
    expect(o.facts).toMatchObject({ code: "api_key_invalid", route: "POST /api/chat" });
    expect(o.facts.credential).toBe(e.facts.credential);
  }, 60_000);

  it("records a forged session cookie as refused (its HMAC only), but not a signed-out 'am I signed in?'", async () => {
    const signedOut = await fetch(`${gw.url}/api/v1/auth/session`, {
      headers: { "x-request-id": "sec-anon" },
    });
    expect(signedOut.status).toBe(401);
    const forgedCookie = "b9s_forgedforgedforgedforgedforgedforged00";
    const forged = await fetch(`${gw.url}/api/v1/auth/session`, {
      headers: { cookie: `b9_session=${forgedCookie}`, "x-request-id": "sec-cookie" },
    });
    expect(forged.status).toBe(401);
    const e = await eventOf("sec-cookie", "auth.refused");
    expect(e.facts.credential).toMatch(/^hmac-sha256:/);
    expect(inDatabase(forgedCookie)).toBe(false);
    // Written in the same batch or before: none came for the visit that showed nothing.
    expect(events("request_id = ?", "sec-anon")).toEqual([]);
  }, 60_000);

  it("records a real key used beyond its rights as forbidden, naming the key", async () => {
    const jobsKey = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "jobs", scopes: ["jobs"] })
    ).body.key;
    const res = await post(
      "/v1/chat/completions",
      { model: "smollm2", messages: [{ role: "user", content: "hi" }] },
      { authorization: `Bearer ${jobsKey}`, "x-request-id": "sec-scope" },
    );
    expect(res.status).toBe(403);
    const e = await eventOf("sec-scope", "auth.forbidden");
    expect(e.actor_type).toBe("key");
    expect(e.actor_id).toMatch(/\S/);
    expect(e.workspace_id).toMatch(/\S/);
    expect(e.facts.code).toBe("scope_missing");
    expect(inDatabase(jobsKey)).toBe(false);
  }, 60_000);

  it("records machine joins, and a join with a bad token as refused", async () => {
    const joined = events(
      "action = 'machine.join' AND outcome = 'ok' AND resource = ?",
      `machine:${worker.machineId}`,
    );
    expect(joined).toHaveLength(1);
    expect(JSON.parse(joined[0]!.details)).toMatchObject({ pool: "external", protocol: "channel" });

    // The real agent's init, with a join token nobody made.
    const forged = "b9j_notarealjointoken000000000000";
    await expect(initAgent(gw, { name: "intruder", token: forged })).rejects.toThrow(
      /join_token_invalid|unknown join token/,
    );
    let refused: Event | undefined;
    await waitFor(
      () => {
        refused = events("action = 'machine.join' AND outcome = 'refused'")[0];
        return refused !== undefined;
      },
      { what: "the refused join's event" },
    );
    const facts = JSON.parse(refused!.details) as Record<string, unknown>;
    expect(facts).toMatchObject({ code: "join_token_invalid", route: "POST /api/v1/machines/join" });
    expect(facts.credential).toMatch(/^hmac-sha256:/);
    expect(refused!.request_id).toMatch(/\S/);
    expect(inDatabase(forged)).toBe(false);
  }, 60_000);

  it("records a real machine credential presented on the agent channel for another machine id", async () => {
    const other = YAML.parse(readFileSync(await initAgent(gw, { name: "bystander" }), "utf8")) as {
      machine: { id: string };
    };
    const { status } = await new Promise<{ status: number }>((resolve, reject) => {
      const req = request(`${gw.url}${CHANNEL_PATH}`, {
        headers: {
          connection: "Upgrade",
          upgrade: CHANNEL_PROTOCOL,
          authorization: `Bearer ${worker.token}`,
          [MACHINE_ID_HEADER]: other.machine.id,
          "x-request-id": "sec-replay",
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      });
      req.on("upgrade", () => reject(new Error("the channel accepted another machine's credential")));
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
    const e = await eventOf("sec-replay", "auth.machine_mismatch");
    expect(e).toMatchObject({ outcome: "refused", resource: `machine:${other.machine.id}` });
    expect(inDatabase(worker.token)).toBe(false);
  }, 60_000);
});

describe("the audit log's inference events", () => {
  it("records who asked which model on which machine, with tokens and request id, never the prompt or answer", async () => {
    const prompt = "Audit canary: describe a purple elephant.";
    const res = await post(
      "/v1/chat/completions",
      { model: "smollm2", messages: [{ role: "user", content: prompt }], max_tokens: 8, temperature: 0 },
      { authorization: `Bearer ${key}`, "x-request-id": "inf-1" },
    );
    expect(res.status).toBe(200);
    const answer = ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message
      .content;
    const e = await eventOf("inf-1", "inference.request");
    expect(e).toMatchObject({ outcome: "ok", actor_type: "key", resource: "model:smollm2" });
    expect(e.facts).toMatchObject({ model: "smollm2", machine_id: worker.machineId, status: 200 });
    expect(e.facts.completion_tokens).toBeGreaterThan(0);
    expect(e.facts.prompt_tokens).toBeGreaterThan(0);
    expect(inDatabase("purple elephant")).toBe(false);
    if (answer.trim().length > 8) expect(inDatabase(answer.trim())).toBe(false);
  }, 120_000);

  it("records a job's run with its machine, country, outcome and the submitting request's id", async () => {
    const jobsKey = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "runner", scopes: ["jobs"] })
    ).body.key;
    const res = await post(
      "/api/v1/jobs",
      { command: ["python3", "-c", "print('audit canary job output')"] },
      { authorization: `Bearer ${jobsKey}`, "x-request-id": "job-1" },
    );
    expect(res.status).toBe(201);
    const job = (await res.json()) as { id: string };
    const e = await eventOf("job-1", "job.run");
    expect(e).toMatchObject({ outcome: "ok", actor_type: "key", resource: `job:${job.id}` });
    expect(e.facts).toMatchObject({ state: "SUCCEEDED", exit_code: 0, machine_id: worker.machineId });
    expect(JSON.stringify(e.facts)).not.toContain("audit canary job output");
  }, 120_000);
});

describe("a workspace that keeps prompts and answers in its audit log (its GDPR choice)", () => {
  it("may be switched on by its own admins only, and the change is itself an event", async () => {
    const refused = await post(
      "/api/v1/workspaces/default/settings",
      { audit_content: true },
      { authorization: `Bearer ${key}` },
    );
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("scope_missing");
    await gw.api("POST", "/api/v1/workspaces", { name: "elsewhere" });
    const otherAdmin = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "their-admin",
        scopes: ["admin"],
        workspace: "elsewhere",
      })
    ).body.key;
    const foreign = await gw.api<{ error: { code: string } }>(
      "POST",
      "/api/v1/workspaces/default/settings",
      { audit_content: true },
      otherAdmin,
    );
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe("forbidden");
    // Its own admins decide for it: no operator needed for a workspace's own data.
    const own = await gw.api<{ audit_content: boolean }>(
      "POST",
      "/api/v1/workspaces/elsewhere/settings",
      { audit_content: true },
      otherAdmin,
    );
    expect(own.status).toBe(200);
    expect(own.body.audit_content).toBe(true);

    const on = await gw.api<{ audit_content: boolean; audit_content_since: string | null }>(
      "POST",
      "/api/v1/workspaces/default/settings",
      { audit_content: true },
    );
    expect(on.status).toBe(200);
    expect(on.body).toMatchObject({ audit_content: true });
    expect(Date.parse(on.body.audit_content_since ?? "")).toBeGreaterThan(0);
    const changes = events("action = ? AND resource = ?", "workspace.settings", "workspace:default");
    // The two refusals are recorded too, as such.
    expect(changes.map((c) => c.outcome)).toEqual(["refused", "refused", "ok"]);
    expect(JSON.parse(changes[2]!.details)).toMatchObject({ audit_content: true });
  }, 60_000);

  it("keeps a streamed chat's prompt and the answer the client saw, through the openai client", async () => {
    const openai = new OpenAI({
      baseURL: `${gw.url}/v1`,
      apiKey: key,
      defaultHeaders: { "x-request-id": "content-stream-1" },
    });
    const prompt = "Content canary: name a green vegetable.";
    const stream = await openai.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: prompt }],
      max_tokens: 12,
      temperature: 0,
      stream: true,
    });
    let seen = "";
    for await (const chunk of stream) seen += chunk.choices[0]?.delta?.content ?? "";
    expect(seen.length).toBeGreaterThan(0);
    const e = await eventOf("content-stream-1", "inference.request");
    const content = e.facts.content as { request: string; answer: string; truncated: boolean };
    expect(content.request).toContain(prompt);
    expect(content.answer).toBe(seen);
    expect(content.truncated).toBe(false);
  }, 120_000);

  it("keeps an Ollama chat's answer too, and nothing once switched off again", async () => {
    const ollama = new Ollama({
      host: gw.url,
      headers: { Authorization: `Bearer ${key}`, "x-request-id": "content-ollama-1" },
    });
    const asked = { model: "smollm2", messages: [{ role: "user", content: "Content canary two: say hi." }] };
    const whole = await ollama.chat({ ...asked, options: { num_predict: 8, temperature: 0 } });
    const e = await eventOf("content-ollama-1", "inference.request");
    expect((e.facts.content as { answer: string }).answer).toBe(whole.message.content);

    const off = await gw.api<{ audit_content: boolean; audit_content_since: string | null }>(
      "POST",
      "/api/v1/workspaces/default/settings",
      { audit_content: false },
    );
    expect(off.body).toMatchObject({ audit_content: false, audit_content_since: null });
    const quiet = new Ollama({
      host: gw.url,
      headers: { Authorization: `Bearer ${key}`, "x-request-id": "content-ollama-2" },
    });
    await quiet.chat({ ...asked, options: { num_predict: 8, temperature: 0 } });
    const after = await eventOf("content-ollama-2", "inference.request");
    expect(after.facts.content).toBeUndefined();
    expect(after.facts.completion_tokens).toBeGreaterThan(0);
  }, 120_000);
});
