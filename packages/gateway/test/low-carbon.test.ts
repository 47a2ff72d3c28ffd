import {
  BIN,
  type GatewayProc,
  type ModelAgent,
  Proc,
  startGateway,
  startModelAgent,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobsClient } from "./jobs-client.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * Carbon-aware placement on real processes: a real gateway and two real agents with the builtin engine,
 * put by the operator in France (56 gCO2e/kWh in the shipped table) and Poland (662). The French one
 * is busier — it serves a model by hand — so placement by load alone would choose Poland; work that
 * prefers low carbon goes to France all the same, and the gateway says why in numbers.
 */

let gw: GatewayProc;
let fr: ModelAgent;
let pl: ModelAgent;
let jobKey: string;
const jobs = jobsClient(
  () => gw,
  () => jobKey,
);

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  [fr, pl] = await Promise.all([
    startModelAgent(gw, { name: "fr", country: "FR" }),
    startModelAgent(gw, { name: "pl", country: "PL" }),
  ]);
  await fr.serve("by-hand", { contextSize: 2048 });
  await waitFor(
    async () =>
      (await gw.api<Json>("GET", `/api/v1/machines/${fr.machineId}`)).body.inference?.models.length === 1,
    { timeoutMs: 30_000, what: "the gateway to see the model fr serves" },
  );
  jobKey = (await gw.api<Json>("POST", "/api/v1/keys", { name: "jobs", scopes: ["jobs"] })).body.key;
}, 180_000);

afterAll(async () => {
  await Promise.all([fr, pl].map((a) => a?.agent.proc.stop()));
  await gw?.proc.stop();
});

describe("prefer low-carbon", () => {
  it("places a deployment's replica on the machine with the cleaner grid though it is busier, and says why", async () => {
    const created = await gw.api<Json>("POST", "/api/v1/deployments", {
      name: "green",
      source: testModelPath(),
      context_size: 2048,
      prefer: "low-carbon",
    });
    expect(created.status).toBe(201);
    expect(created.body.prefer).toBe("low-carbon");
    const key = (await gw.api<Json>("POST", "/api/v1/keys", { name: "app", scopes: ["inference"] })).body.key;
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    const answer = await openai.chat.completions.create({
      model: "green",
      messages: [{ role: "user", content: "Say hi" }],
      // Greedy: sampled, two tokens may be nothing but whitespace.
      max_tokens: 8,
      temperature: 0,
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();
    const { replicas } = (await gw.api<Json>("GET", "/api/v1/replicas")).body;
    const green = replicas.filter((r: Json) => r.deployment === "green");
    expect(green).toHaveLength(1);
    expect(green[0].machine_name).toBe("fr");
    expect(green[0].placed_because).toMatch(
      /^lowest expected carbon: fr: .*FR grid 56 gCO2e\/kWh \(ember:\d{4}\)/,
    );
    expect(green[0].placed_because).toMatch(/next pl: .*PL grid 662 gCO2e\/kWh/);
    // b9 model ps says it under its table.
    const ps = new Proc([BIN.cli, "model", "ps"], { BETA9_GATEWAY: gw.url, BETA9_API_KEY: gw.adminKey });
    expect(await ps.exited).toBe(0);
    const out = ps.lines.join("\n");
    expect(out).toContain("Why each replica runs where it does:");
    expect(out).toMatch(/ {2}green on fr: lowest expected carbon: fr: /);
  });

  it("runs a low-carbon job on the cleaner machine and keeps the reason; without the preference it goes by load", async () => {
    const green = await jobs.submit({ command: ["true"], prefer: "low-carbon" });
    expect(green.status).toBe(201);
    const ran = await jobs.until(green.body.id, ["SUCCEEDED"], { timeoutMs: 60_000 });
    expect(ran.machine_id).toBe(fr.machineId);
    const assigned = ran.events.find((e: Json) => e.state === "ASSIGNED");
    expect(assigned.reason).toMatch(/^assigned to fr: lowest expected carbon: fr: 56 gCO2e per kWh drawn/);

    const plain = await jobs.submit({ command: ["true"] });
    const byLoad = await jobs.until(plain.body.id, ["SUCCEEDED"], { timeoutMs: 60_000 });
    expect(byLoad.machine_id).toBe(pl.machineId);
    expect(byLoad.events.find((e: Json) => e.state === "ASSIGNED").reason).toMatch(
      /^assigned to pl: least loaded/,
    );
  });

  it("refuses a preference it does not know", async () => {
    const res = await gw.api<Json>("POST", "/api/v1/deployments", {
      name: "odd",
      source: testModelPath(),
      prefer: "cheapest",
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("bad_request");
  });
});
