import { basename } from "node:path";
import {
  type FileServer,
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  startPythonFileServer,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * Two workspaces on one pool, for real: each sees and calls its own deployments, never the other's,
 * in the OpenAI and the Ollama API alike; a model the machine's owner serves by hand is the
 * operator's alone (nothing but the machine's word stands behind it).
 */

let gw: GatewayProc;
let worker: ModelAgent;
let files: FileServer;
let ours: string;
let team: string;

const hi = [{ role: "user" as const, content: "What is the capital of France?" }];
const openai = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
const ollama = (key: string) => new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${key}` } });
const key = async (body: Record<string, unknown>) =>
  (await gw.api<{ key: string }>("POST", "/api/v1/keys", body)).body.key;

beforeAll(async () => {
  gw = await startGateway();
  // A team's source may not name files on the machine nor private addresses: its model comes from a
  // file server this machine's owner allows (models.allow_private_sources).
  files = await startPythonFileServer([testModelPath()]);
  worker = await startModelAgent(gw, { allowPrivateSources: ["127.0.0.1"] });
  // Started on the agent by its owner, with no deployment: the operator's workspace may call it.
  await worker.serve("shared");
  expect((await gw.api("POST", "/api/v1/workspaces", { name: "team" })).status).toBe(201);
  ours = await key({ name: "app", scopes: ["inference"] });
  team = await key({ name: "team-app", scopes: ["inference"], workspace: "team" });
  const teamAdmin = await key({ name: "team-admin", scopes: ["admin"], workspace: "team" });
  const deploy = (name: string, k: string, source: string) =>
    gw.api("POST", "/api/v1/deployments", { name, source, context_size: 2048 }, k);
  expect((await deploy("ours", gw.adminKey, testModelPath())).status).toBe(201);
  expect((await deploy("theirs", teamAdmin, files.url(basename(testModelPath())))).status).toBe(201);
  await waitFor(async () => (await openai(ours).models.list()).data.some((m) => m.id === "shared"), {
    what: "the gateway to see the shared model",
  });
}, 90_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await files?.stop();
  await gw?.proc.stop();
});

const ids = async (k: string) => (await openai(k).models.list()).data.map((m) => m.id);
const tags = async (k: string) => (await ollama(k).list()).models.map((m) => m.name);
const running = async (k: string) => (await ollama(k).ps()).models.map((m) => m.name);

describe("workspaces see and call only their own models", () => {
  it("lists a workspace's deployments (running or scaled to zero), and hand-served models to the operator", async () => {
    expect(await ids(ours)).toEqual(["ours", "shared"]);
    expect(await ids(team)).toEqual(["theirs"]);
    expect(await tags(ours)).toEqual(["ours", "shared"]);
    expect(await tags(team)).toEqual(["theirs"]);
    expect(await running(ours)).toEqual(["shared"]);
    const show = await ollama(ours).show({ model: "ours" });
    expect(show.modelfile).toMatch(/scaled to zero/);
  });

  it("answers 404 in each API's format for another workspace's model, even while a machine runs it", async () => {
    // The team's first request loads its model on the shared machine.
    const answer = await openai(team).chat.completions.create({
      model: "theirs",
      messages: hi,
      max_tokens: 4,
    });
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(await running(team)).toEqual(["theirs"]);

    const refused = openai(ours).chat.completions.create({ model: "theirs", messages: hi, max_tokens: 4 });
    await expect(refused).rejects.toMatchObject({ status: 404, code: "model_not_found" });
    const message = await refused.catch((e: Error) => e.message);
    expect(message).toMatch(/its models: ours, shared/);
    expect(message).not.toMatch(/theirs,|, theirs/);
    await expect(openai(ours).embeddings.create({ model: "theirs", input: "hello" })).rejects.toMatchObject({
      status: 404,
    });

    await expect(ollama(ours).chat({ model: "theirs", messages: hi })).rejects.toMatchObject({
      name: "ResponseError",
      status_code: 404,
      error: expect.stringMatching(/model "theirs" not found/),
    });
    await expect(ollama(ours).show({ model: "theirs" })).rejects.toMatchObject({ status_code: 404 });
    await expect(ollama(ours).embed({ model: "theirs", input: [] })).rejects.toMatchObject({
      status_code: 404,
    });
    expect(await running(ours)).toEqual(["shared"]);
    expect(await ids(ours)).toEqual(["ours", "shared"]);

    // And the other way round; the hand-served model answers the operator's workspace only.
    await expect(
      ollama(team).generate({ model: "ours", prompt: "hi", options: { num_predict: 2 } }),
    ).rejects.toMatchObject({ status_code: 404 });
    const r = await ollama(ours).chat({ model: "shared", messages: hi, options: { num_predict: 4 } });
    expect(r.done).toBe(true);
    await expect(
      ollama(team).chat({ model: "shared", messages: hi, options: { num_predict: 4 } }),
    ).rejects.toMatchObject({ status_code: 404 });
    await expect(
      openai(team).chat.completions.create({ model: "shared", messages: hi, max_tokens: 4 }),
    ).rejects.toMatchObject({ status: 404, code: "model_not_found" });
  }, 60_000);

  it("shows a team, on the pool's machines, only the models it may call; the operator sees all", async () => {
    // "ours" runs now too, so the machine serves all three.
    await openai(ours).chat.completions.create({ model: "ours", messages: hi, max_tokens: 2 });
    const teamReader = await key({ name: "team-reader", scopes: ["read"], workspace: "team" });
    const models = async (k: string) => {
      const m = (
        await gw.api<{ machines: { inference: { models: { name: string }[] } | null }[] }>(
          "GET",
          "/api/v1/machines",
          undefined,
          k,
        )
      ).body.machines[0]!;
      return m.inference!.models.map((x) => x.name).sort();
    };
    expect(await models(gw.adminKey)).toEqual(["ours", "shared", "theirs"]);
    expect(await models(teamReader)).toEqual(["theirs"]);
  }, 60_000);
});
