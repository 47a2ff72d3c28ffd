import {
  type ClusterDatabase,
  clusterDatabase,
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";

/*
 * Two gateway replicas on one PostgreSQL, on loopback. The machine's agent holds its channel to A,
 * so A routes its requests; the operator sets the machine's country through B. A must route by what
 * B set, within the replicas' sync interval, or an EU-only workspace's traffic would keep going to a
 * machine the operator has just said is in the US.
 */
let db: ClusterDatabase;
let a: GatewayProc;
let b: GatewayProc;
let worker: ModelAgent;

const chat = () =>
  new OpenAI({ baseURL: `${a.url}/v1`, apiKey: a.adminKey, maxRetries: 0 }).chat.completions.create({
    model: "handmade",
    messages: [{ role: "user", content: "Say hi" }],
    max_tokens: 2,
  });
const countryAtA = async () =>
  (await a.api<{ country: string | null }>("GET", `/api/v1/machines/${worker.machineId}`)).body.country;

beforeAll(async () => {
  db = await clusterDatabase();
  a = await startGateway({ databaseUrl: db.url });
  b = await startGateway({ databaseUrl: db.url, dataDir: a.dataDir });
  worker = await startModelAgent(a, { name: "moved", country: "DE" });
  await worker.serve("handmade");
  expect((await a.api("POST", "/api/v1/workspaces/default/residency", { region: "eu" })).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await Promise.all([a, b].map((g) => g?.proc.stop()));
  await db?.drop();
});

it("routes by the country the operator set through another replica", async () => {
  expect((await chat()).choices).toHaveLength(1);
  expect((await b.api("PATCH", `/api/v1/machines/${worker.machineId}`, { country: "US" })).status).toBe(200);
  await waitFor(async () => (await countryAtA()) === "US", {
    what: "A to read the country set through B",
    timeoutMs: 20_000,
  });
  await expect(chat()).rejects.toMatchObject({ status: 403, code: "residency" });
  // And back: set in the EU through B, A serves it again.
  expect((await b.api("PATCH", `/api/v1/machines/${worker.machineId}`, { country: "FR" })).status).toBe(200);
  await waitFor(async () => (await countryAtA()) === "FR", {
    what: "A to read the country set back through B",
    timeoutMs: 20_000,
  });
  expect((await chat()).choices).toHaveLength(1);
}, 90_000);

it("keeps one request id when a replica forwards a request whose own id was unsafe", async () => {
  // The machine's channel is A's: B forwards the request to A, which answers it and writes its usage row.
  const res = await fetch(`${b.url}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${b.adminKey}`,
      "content-type": "application/json",
      "x-request-id": 'unsafe id"\n{"forged":1}'.replace("\n", " "),
    },
    body: JSON.stringify({
      model: "handmade",
      messages: [{ role: "user", content: "Say hi" }],
      max_tokens: 2,
    }),
  });
  expect(res.status).toBe(200);
  await res.json();
  const id = res.headers.get("x-request-id");
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  const { default: pg } = await import("pg");
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await waitFor(
      async () => (await c.query("SELECT 1 FROM usage WHERE request_id = $1", [id])).rowCount === 1,
      { what: "the usage row under the id the client was given", timeoutMs: 20_000 },
    );
  } finally {
    await c.end();
  }
}, 60_000);
