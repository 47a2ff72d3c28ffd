import {
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import OpenAI, { PermissionDeniedError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * EU residency on real processes: a real gateway, real agents with the builtin engine and the test
 * model. A machine's country is the operator's word (its join token, b9 machine set), never its own;
 * an EU-only workspace's work runs only on machines the operator put in the EU, at every entry point,
 * and is refused with the code `residency` rather than served elsewhere.
 */

let gw: GatewayProc;
/** Outside the EU, though its owner says (b9agent init --country DE) it is in Germany. */
let us: ModelAgent;
/** In Germany, by its join token. */
let de: ModelAgent | undefined;
/** Keys of the operator's workspace (the only one that reaches models served by hand). */
let app: string;
let jobs: string;

const openai = (key = app) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
const chat = (model: string, key = app) =>
  openai(key).chat.completions.create({
    model,
    messages: [{ role: "user", content: "Say hi" }],
    max_tokens: 2,
  });
const post = async (path: string, body: unknown, key = app): Promise<{ status: number; body: Json }> => {
  const res = await fetch(gw.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith("{") ? JSON.parse(text) : text };
};
const machine = async (id: string): Promise<Json> =>
  (await gw.api<Json>("GET", `/api/v1/machines/${id}`)).body;
const key = async (name: string, body: Record<string, unknown> = {}) =>
  gw.api<Json>("POST", "/api/v1/keys", { name, scopes: ["inference"], ...body });

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  // Its join token binds no country: what the agent says of itself must not place EU work on it.
  us = await startModelAgent(gw, { name: "us", initArgs: ["--country", "DE"] });
  app = (await key("app")).body.key;
  jobs = (await gw.api<Json>("POST", "/api/v1/keys", { name: "jobs", scopes: ["jobs"] })).body.key;
}, 120_000);

afterAll(async () => {
  await Promise.all([us, de].map((a) => a?.agent.proc.stop()));
  await gw?.proc.stop();
});

describe("EU residency", () => {
  it("does not take a machine's word for its country: EU work is not placed on it", async () => {
    expect(await machine(us.machineId)).toMatchObject({ country: null, declared_country: "DE" });
    const deployed = await gw.api("POST", "/api/v1/deployments", {
      name: "eu-chat",
      source: testModelPath(),
      region: "eu",
      context_size: 2048,
    });
    expect(deployed.status).toBe(201);
    // Before, the agent's own --country DE made it an EU machine, and it answered.
    const refused = await chat("eu-chat").catch((err: unknown) => err);
    expect(refused).toMatchObject({ status: 503, message: expect.stringMatching(/is in the EU/) });
    expect((await machine(us.machineId)).inference.models).toEqual([]);
    // The operator says where it is.
    expect(await gw.api("PATCH", `/api/v1/machines/${us.machineId}`, { country: "US" })).toMatchObject({
      status: 200,
      body: { country: "US", declared_country: "DE", pue: 1 },
    });
  }, 120_000);

  it("refuses an EU-only workspace a model served by hand outside the EU, at every entry point", async () => {
    await us.serve("handmade");
    // Today's bypass: the operator's workspace reaches what a machine serves by hand, wherever it is.
    expect((await chat("handmade")).choices).toHaveLength(1);
    const listed = async () => (await openai().models.list()).data.map((m) => m.id);
    expect(await listed()).toContain("handmade");

    expect(await gw.api("POST", "/api/v1/workspaces/default/residency", { region: "eu" })).toMatchObject({
      status: 200,
      body: { name: "default", region: "eu", countries: [] },
    });
    // Not listed for it any more: nothing it may run serves the name.
    expect(await listed()).not.toContain("handmade");
    // The real openai client gets the refusal as its own error, with our stable code.
    const err = await chat("handmade").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(err).toMatchObject({
      status: 403,
      code: "residency",
      message: expect.stringMatching(/may run only in the EU/),
    });
    const openaiCalls: [string, unknown][] = [
      ["/v1/completions", { model: "handmade", prompt: "Hi", max_tokens: 2 }],
      ["/v1/embeddings", { model: "handmade", input: "Hi" }],
      [
        "/v1/chat/completions",
        { model: "handmade", messages: [{ role: "user", content: "Hi" }], stream: true },
      ],
    ];
    for (const [path, body] of openaiCalls) {
      expect(await post(path, body), path).toMatchObject({
        status: 403,
        body: { error: { code: "residency", message: expect.stringMatching(/may run only in the EU/) } },
      });
    }
    const ollamaCalls: [string, unknown][] = [
      ["/api/chat", { model: "handmade", messages: [{ role: "user", content: "Hi" }], stream: false }],
      ["/api/generate", { model: "handmade", prompt: "Hi", stream: false }],
      ["/api/embed", { model: "handmade", input: "Hi" }],
      ["/api/pull", { model: "handmade", stream: false }],
    ];
    for (const [path, body] of ollamaCalls) {
      expect(await post(path, body, gw.adminKey), path).toMatchObject({
        status: 403,
        body: { error: expect.stringMatching(/may run only in the EU/) },
      });
    }
  }, 180_000);

  it("runs an EU-only workspace's deployments, pulls and jobs in the EU, and refuses them elsewhere", async () => {
    de = await startModelAgent(gw, { name: "de", country: "DE" });
    expect(await machine(de.machineId)).toMatchObject({ country: "DE", declared_country: null });
    expect((await chat("eu-chat")).choices).toHaveLength(1);
    const models = async (m: ModelAgent) =>
      ((await machine(m.machineId)).inference?.models ?? []).map((x: { name: string }) => x.name);
    expect(await models(de)).toContain("eu-chat");
    expect(await models(us)).not.toContain("eu-chat");

    // A deployment asking for a country outside is refused; one asking nothing gets the workspace's EU.
    expect(
      await gw.api("POST", "/api/v1/deployments", {
        name: "us-chat",
        source: testModelPath(),
        countries: ["US"],
      }),
    ).toMatchObject({
      status: 403,
      body: { error: { code: "residency", message: expect.stringMatching(/US/) } },
    });
    const pulled = await gw.api("POST", "/api/v1/deployments", { name: "eu-pull", source: testModelPath() });
    expect(pulled).toMatchObject({ status: 201, body: { region: "eu", countries: [] } });
    const res = await fetch(`${gw.url}/api/v1/deployments/eu-pull/pull`, {
      method: "POST",
      headers: { authorization: `Bearer ${gw.adminKey}` },
    });
    const events = (await res.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { status: string; machine_name?: string });
    expect(events.at(-1)).toMatchObject({ status: "success" });
    // Pulled where it will be served: in Germany, never on the machine in the US.
    const where = new Set(events.map((e) => e.machine_name).filter(Boolean));
    expect([...where]).toEqual(["de"]);

    // Jobs: a country outside is refused; none is narrowed to the workspace's countries, so only DE fits.
    expect(await post("/api/v1/jobs", { command: ["true"], countries: ["US"] }, jobs)).toMatchObject({
      status: 403,
      body: { error: { code: "residency" } },
    });
    const job = await post("/api/v1/jobs", { command: ["true"] }, jobs);
    expect(job.status).toBe(201);
    expect(job.body.spec.countries).toContain("DE");
    expect(job.body.spec.countries).not.toContain("US");
    await waitFor(
      async () =>
        (await gw.api<Json>("GET", `/api/v1/jobs/${job.body.id}`, undefined, jobs)).body.machine_id ===
        de?.machineId,
      {
        what: "the job to be placed on the machine in Germany",
        timeoutMs: 60_000,
      },
    );
  }, 240_000);

  it("lets a key narrow its workspace's countries, never widen them", async () => {
    expect(await key("wide", { countries: ["US"] })).toMatchObject({
      status: 403,
      body: { error: { code: "residency", message: expect.stringMatching(/a key cannot widen that \(US/) } },
    });
    expect(await key("bad", { countries: ["UK"] })).toMatchObject({
      status: 400,
      body: {
        error: { code: "invalid_country", message: expect.stringMatching(/the United Kingdom is GB/) },
      },
    });
    const fr = await key("fr-only", { countries: ["FR"] });
    expect(fr).toMatchObject({ status: 201, body: { countries: ["FR"], region: null } });
    // The German replica is not for a key that may run only in France.
    expect(await chat("eu-chat", fr.body.key).catch((e: unknown) => e)).toMatchObject({ status: 503 });
    // Nor does its pull go there: a pull runs where the key may run, or is refused.
    const pull = await fetch(`${gw.url}/api/v1/deployments/eu-pull/pull`, {
      method: "POST",
      headers: { authorization: `Bearer ${fr.body.key}` },
    });
    expect(pull.status).toBe(503);
    const deOnly = await key("de-only", { countries: ["DE"] });
    expect((await chat("eu-chat", deOnly.body.key)).choices).toHaveLength(1);
    // A workspace cannot be narrowed past its own deployments' countries: they keep replicas there.
    expect(await gw.api("POST", "/api/v1/workspaces/default/residency", { countries: ["FR"] })).toMatchObject(
      {
        status: 403,
        body: { error: { code: "residency", message: expect.stringMatching(/eu-chat/) } },
      },
    );
  }, 120_000);

  it("does not make a workspace or key EU-only while a job of theirs may still run elsewhere", async () => {
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "later" })).status).toBe(201);
    const laterKey = (
      await gw.api<Json>("POST", "/api/v1/keys", { name: "j", scopes: ["jobs"], workspace: "later" })
    ).body;
    const job = await post("/api/v1/jobs", { command: ["sleep", "600"] }, laterKey.key);
    expect(job.status).toBe(201);
    const outside = {
      status: 403,
      body: {
        error: { code: "residency", message: expect.stringContaining(`job ${job.body.id} may run outside`) },
      },
    };
    expect(await gw.api("POST", "/api/v1/workspaces/later/residency", { region: "eu" })).toMatchObject(
      outside,
    );
    expect(
      await gw.api("POST", `/api/v1/keys/${laterKey.id}/residency`, { countries: ["DE"] }),
    ).toMatchObject(outside);
    expect((await post(`/api/v1/jobs/${job.body.id}/cancel`, {}, laterKey.key)).status).toBe(200);
    await waitFor(
      async () =>
        (await gw.api("POST", "/api/v1/workspaces/later/residency", { region: "eu" })).status === 200,
      { what: "the workspace to be made EU-only once its job ended", timeoutMs: 30_000 },
    );
    expect(
      await gw.api("POST", `/api/v1/keys/${laterKey.id}/residency`, { countries: ["DE"] }),
    ).toMatchObject({
      status: 200,
      body: { countries: ["DE"] },
    });
  }, 60_000);
});
