import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
  waitFor,
  withGatewayDb,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * One request id from the client to the engine (design decision 9): the real gateway, agent, builtin
 * engine and SmolLM2. The id a client sends (when short and safe) or the one the gateway gives is in
 * the answer's x-request-id, the gateway's log line, the agent's, the engine's, and the usage row.
 */

let gw: GatewayProc;
let worker: ModelAgent;
let key: string;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "request-id" });
  await worker.serve("smollm2");
  key = await inferenceKey(gw);
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

function chat(headers: Record<string, string> = {}, model = "smollm2", auth = key): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${auth}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "Say hi." }],
      max_tokens: 8,
      temperature: 0,
    }),
  });
}

/** What the gateway's store holds, read beside it (SQLite in WAL mode takes a reader). */
function rows<T>(sql: string, ...params: string[]): T[] {
  return withGatewayDb(gw, (db) => db.prepare(sql).all(...params) as T[]);
}

describe("one request id, end to end", () => {
  it("follows a request through the answer's header, the gateway's, agent's and engine's logs and its usage row", async () => {
    const id = "trace-2026.12:abc_1";
    const res = await chat({ "x-request-id": id });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe(id);
    await res.json();

    const gwLine = await gw.proc.waitForLog((e) => e.request_id === id && e.msg === "inference request");
    expect(gwLine).toMatchObject({ model: "smollm2", machine_id: worker.machineId, status: 200 });
    const agentLine = await worker.agent.proc.waitForLog(
      (e) => e.request_id === id && e.msg === "inference request answered",
    );
    expect(agentLine).toMatchObject({ model: "smollm2", status: 200 });
    // The builtin engine's own line (the agent passes its engine's lines on as their text).
    await worker.agent.proc.waitForLog(
      (e) => String(e.msg).includes(`"request_id":"${id}"`) && String(e.msg).includes("generation finished"),
    );

    let usage: { request_id: string; status: number; machine_id: string }[] = [];
    await waitFor(
      () => {
        usage = rows("SELECT request_id, status, machine_id FROM usage WHERE request_id = ?", id);
        return usage.length === 1;
      },
      { what: "the request's usage row" },
    );
    expect(usage[0]).toMatchObject({ status: 200, machine_id: worker.machineId });
  }, 120_000);

  it("gives a request without an id, or with one too long or unsafe for a log line, a fresh one", async () => {
    for (const given of [undefined, "x".repeat(65), 'bad id"\\n{"forged":1}']) {
      const res = await chat(given === undefined ? {} : { "x-request-id": given });
      expect(res.status).toBe(200);
      await res.json();
      const id = res.headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(id).not.toBe(given);
      await waitFor(() => rows("SELECT id FROM usage WHERE request_id = ?", id!).length === 1, {
        what: "the usage row under the fresh id",
      });
    }
  }, 120_000);

  it("names the request in refusals too: a bad key, an unknown model, an unknown route", async () => {
    for (const res of [
      await chat({ "x-request-id": "refused-key" }, "smollm2", "b9_not_a_key"),
      await chat({ "x-request-id": "refused-model" }, "no-such-model"),
      await fetch(`${gw.url}/v1/nothing-here`, { headers: { "x-request-id": "refused-route" } }),
    ]) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.headers.get("x-request-id")).toMatch(/^refused-/);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBeTypeOf("string");
    }
    // A refused inference request is still metered, under its id.
    await waitFor(() => rows("SELECT id FROM usage WHERE request_id = ?", "refused-model").length === 1, {
      what: "the refused request's usage row",
    });
  }, 60_000);

  it("keeps the submitting request's id with a job", async () => {
    const jobsKey = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "jobs", scopes: ["jobs"] })
    ).body.key;
    const res = await fetch(`${gw.url}/api/v1/jobs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${jobsKey}`,
        "content-type": "application/json",
        "x-request-id": "submit-1",
      },
      body: JSON.stringify({ command: ["python3", "-c", "print(1)"] }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-request-id")).toBe("submit-1");
    const job = (await res.json()) as { id: string };
    expect(rows<{ request_id: string }>("SELECT request_id FROM jobs WHERE id = ?", job.id)).toEqual([
      { request_id: "submit-1" },
    ]);
    await gw.proc.waitForLog((e) => e.request_id === "submit-1" && String(e.msg).includes(job.id));
  }, 60_000);
});
