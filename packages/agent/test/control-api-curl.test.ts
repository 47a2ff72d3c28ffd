import { request } from "node:http";
import {
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  TEST_MODEL,
  testModelPath,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The control API called the way the fork's users call it with curl: `curl -X POST` with no body,
 * `curl -d '{…}'` (which sends application/x-www-form-urlencoded) or a body with no content type at
 * all, against a real agent with the builtin engine and the real SmolLM2.
 */

let gw: GatewayProc;
let worker: ModelAgent;

/** One request as curl sends it: only the headers given, the JSON text as the body (fetch would add text/plain). */
function curl(
  method: string,
  path: string,
  opts: { body?: string; contentType?: string } = {},
): Promise<{
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}> {
  const url = new URL(worker.agent.controlUrl + path);
  const headers: Record<string, string> = { authorization: `Bearer ${worker.token}` };
  if (opts.contentType) headers["content-type"] = opts.contentType;
  if (opts.body !== undefined) headers["content-length"] = String(Buffer.byteLength(opts.body));
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        text += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

const FORM = "application/x-www-form-urlencoded";

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "curl-box" });
}, 120_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

describe("the control API as curl calls it", () => {
  it("reports the port of the agent's own OpenAI-compatible endpoint in /status", async () => {
    const res = await curl("GET", "/status");
    expect(res.status).toBe(200);
    expect(res.body.inference_port).toBe(Number(new URL(worker.agent.controlUrl).port));
  });

  it("a start with no body and nothing stored says to pull a model first", async () => {
    const res = await curl("POST", "/inference/start");
    expect(res.status).toBe(400);
    expect(res.body.error?.code).toBe("bad_request");
    expect(res.body.error?.message).toContain("POST /inference/pull");
  });

  it("pulls with `curl -d` (form-urlencoded JSON) and answers the fork's status and message", async () => {
    const res = await curl("POST", "/inference/pull", {
      body: JSON.stringify({ model: "smollm2", source: testModelPath() }),
      contentType: FORM,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      name: "smollm2",
      sha256: TEST_MODEL.sha256,
      status: "ok",
      message: "pulled smollm2",
    });
  });

  it("a start with no body serves the only stored model; a stop with no body stops everything", async () => {
    const started = await curl("POST", "/inference/start");
    expect(started.status).toBe(200);
    expect(started.body.status).toBe("running");
    expect(started.body.message).toBe("smollm2 is running");
    expect(started.body.models).toMatchObject([{ name: "smollm2", state: "ready" }]);

    const stopped = await curl("POST", "/inference/stop");
    expect(stopped.status).toBe(200);
    expect(stopped.body).toMatchObject({ status: "stopped", message: "stopped all models", models: [] });
  });

  it("accepts a JSON body with no content type, and -d with an empty body", async () => {
    const started = await curl("POST", "/inference/start", { body: JSON.stringify({ model: "smollm2" }) });
    expect(started.status).toBe(200);
    expect(started.body.models).toMatchObject([{ name: "smollm2", state: "ready" }]);

    const stopped = await curl("POST", "/inference/stop", {
      body: JSON.stringify({ model: "smollm2" }),
      contentType: FORM,
    });
    expect(stopped.status).toBe(200);
    expect(stopped.body).toMatchObject({ status: "stopped", message: "stopped smollm2" });

    // `curl -d ''`: a content type and no JSON at all, i.e. no options.
    const again = await curl("POST", "/inference/start", { body: "", contentType: FORM });
    expect(again.status).toBe(200);
    expect(again.body.message).toBe("smollm2 is running");
    expect((await curl("POST", "/inference/stop")).status).toBe(200);
  });

  it("refuses a body that is not JSON with a sentence saying what to send", async () => {
    const res = await curl("POST", "/inference/start", { body: "model=smollm2", contentType: FORM });
    expect(res.status).toBe(400);
    expect(res.body.error?.message).toContain('{"model": "NAME"}');
  });

  // Hubs are unreachable here and no Ollama engine runs: this proves the fallback source is chosen.
  it("a pull by a bare name the store lacks tries the Ollama registry (failure names ollama:NAME)", async () => {
    const res = await curl("POST", "/inference/pull", {
      body: JSON.stringify({ model: "gemma3:1b" }),
      contentType: FORM,
    });
    expect(res.status).not.toBe(404);
    expect(res.body.error?.message).toContain("pulling ollama:gemma3:1b failed");
    // Nothing half-made stays: the failed pull left no record to serve or to pull "successfully" again.
    const again = await curl("POST", "/inference/pull", { body: JSON.stringify({ model: "gemma3:1b" }) });
    expect(again.status).not.toBe(201);
    expect(again.body.error?.message).toContain("pulling ollama:gemma3:1b failed");
  });
});
