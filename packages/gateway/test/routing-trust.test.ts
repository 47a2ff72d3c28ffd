import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The gateway decides, machines only report (docs/architecture.md §5). Real agents whose owners lie: one
 * joined to another pool, one outside the EU, each starting the test model by hand under a
 * deployment's name and claiming in its heartbeats that a gateway started it for that deployment.
 * A deployment's requests must go only to the replica the gateway placed, on a machine that fits.
 */

let gw: GatewayProc;
let honest: ModelAgent;
let otherPool: ModelAgent;
let outsideEu: ModelAgent;
let app: string;

const ask = (model: string) =>
  new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: app, maxRetries: 0 }).chat.completions.create({
    model,
    messages: [{ role: "user", content: "Say hi" }],
    max_tokens: 2,
  });

/** Requests each machine answered since `since`, from the gateway's own usage records. */
async function answeredBy(since: string): Promise<Map<string, number>> {
  const res = await gw.api<{ groups: { group: string; requests: number }[] }>(
    "GET",
    `/api/v1/usage?group_by=machine&since=${since}`,
  );
  return new Map(res.body.groups.map((g) => [g.group, g.requests]));
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** Ask `model` n times; return who answered, once all n are recorded. */
async function askTimes(model: string, n: number): Promise<Map<string, number>> {
  const since = new Date(Date.now() - 1000).toISOString();
  // What the window holds already (answers of an earlier call, all recorded before it returned).
  const before = await answeredBy(since);
  // Answered: one choice each (the model may end at once, with no text and no completion token).
  for (let i = 0; i < n; i++) expect((await ask(model)).choices).toHaveLength(1);
  await waitFor(async () => total(await answeredBy(since)) === total(before) + n, {
    what: `usage of the ${n} answers`,
  });
  const after = await answeredBy(since);
  const by = new Map<string, number>();
  for (const [machine, count] of after) {
    const added = count - (before.get(machine) ?? 0);
    if (added > 0) by.set(machine, added);
  }
  return by;
}

beforeAll(async () => {
  gw = await startGateway();
  expect((await gw.api("POST", "/api/v1/pools", { name: "other" })).status).toBe(201);
  const otherToken = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { pool: "other" })).body
    .token;
  honest = await startModelAgent(gw, { name: "honest-de", country: "DE" });
  otherPool = await startModelAgent(gw, { name: "liar-other-pool", token: otherToken });
  outsideEu = await startModelAgent(gw, { name: "liar-us", country: "US" });
  app = await inferenceKey(gw);
}, 120_000);

afterAll(async () => {
  await Promise.all([honest, otherPool, outsideEu].map((a) => a?.agent.proc.stop()));
  await gw?.proc.stop();
});

describe("routing trusts no machine's word", () => {
  it("a deployment's requests never reach a machine of another pool that claims to serve it", async () => {
    const deployed = await gw.api("POST", "/api/v1/deployments", {
      name: "victim",
      source: testModelPath(),
      pool: "external",
      context_size: 2048,
    });
    expect(deployed.status).toBe(201);
    // Served by hand on the other pool's machine, reported as a deployment's replica.
    await otherPool.serve("victim", { deployment: true });

    // From zero: the gateway places a replica in the deployment's pool, and routes only there.
    const by = await askTimes("victim", 8);
    expect(by.get(otherPool.machineId)).toBeUndefined();
    // Either machine of pool external may hold the replica (no other constraint), one of them does.
    expect([...by.keys()]).toHaveLength(1);
    expect([honest.machineId, outsideEu.machineId]).toContain([...by.keys()][0]);
  }, 120_000);

  it("an EU-only deployment's requests never reach a machine outside the EU serving its name by hand", async () => {
    const deployed = await gw.api("POST", "/api/v1/deployments", {
      name: "eu-only",
      source: testModelPath(),
      region: "eu",
      context_size: 2048,
    });
    expect(deployed.status).toBe(201);
    await outsideEu.serve("eu-only", { deployment: true });
    // Asked in another case: the same deployment.
    const by = await askTimes("EU-Only", 8);
    expect([...by.keys()]).toEqual([honest.machineId]);
  }, 120_000);

  it("a team cannot reach a model a machine serves by hand, and a deployment name cannot be taken in another case", async () => {
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "team" })).status).toBe(201);
    const teamAdmin = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "t",
        scopes: ["admin"],
        workspace: "team",
      })
    ).body.key;
    const taken = await gw.api<{ error: { code: string; message: string } }>(
      "POST",
      "/api/v1/deployments",
      { name: "VICTIM", source: testModelPath() },
      teamAdmin,
    );
    expect(taken.status).toBe(409);
    expect(taken.body.error.message).toMatch(/another workspace has deployed a model named victim/);
    await otherPool.serve("handmade");
    const team = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: teamAdmin, maxRetries: 0 });
    await expect(
      team.chat.completions.create({ model: "handmade", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404, code: "model_not_found" });
  }, 60_000);
});
