import { chmodSync, existsSync, statSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
  tempDir,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * What the security review (issue 10, finding 13) found on a real b9gateway: /metrics open to anyone,
 * a world-readable SQLite store, deeply nested JSON answered 500 with a stack trace, and Node's own
 * 431 in a shape of its own. And inference bodies of the wrong shape (issue 12), refused at the edge.
 */

let gw: GatewayProc;

beforeAll(async () => {
  gw = await startGateway();
}, 60_000);

afterAll(async () => {
  await gw?.proc.stop("SIGKILL");
});

const mode = (path: string) => statSync(path).mode & 0o777;

async function keyWithId(name: string): Promise<{ id: string; key: string }> {
  const res = await gw.api<{ id: string; key: string }>("POST", "/api/v1/keys", {
    name,
    scopes: ["inference"],
  });
  expect(res.status).toBe(201);
  return res.body;
}

async function post(key: string, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gw.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** The requests the usage API counts for a key (0 before its first). */
async function requestsOf(id: string): Promise<number> {
  const res = await gw.api<{ groups: { group: string; requests: number }[] }>(
    "GET",
    "/api/v1/usage?group_by=key",
  );
  return res.body.groups.find((g) => g.group === id)?.requests ?? 0;
}

const messages = [{ role: "user", content: "Say hi" }];

describe("/metrics", () => {
  it("asks for an operator key with the read or admin scope", async () => {
    const scrape = (key?: string) =>
      fetch(`${gw.url}/metrics`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
    const anonymous = await scrape();
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await scrape(await inferenceKey(gw))).status).toBe(403);
    const reader = await gw.api<{ key: string }>("POST", "/api/v1/keys", {
      name: "prometheus",
      scopes: ["read"],
    });
    const ok = await scrape(reader.body.key);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("beta9_machines");
  });

  it("is served without a key on --metrics-listen, and only there", async () => {
    const scraped = await startGateway({ args: ["--metrics-listen", "127.0.0.1:0"] });
    try {
      const line = await scraped.proc.waitForLog((e) => String(e.msg).startsWith("metrics on "));
      const res = await fetch(`http://${String(line.address)}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("beta9_machines");
      expect((await fetch(`http://${String(line.address)}/api/v1/pools`)).status).toBe(404);
      expect((await fetch(`${scraped.url}/metrics`)).status).toBe(401);
    } finally {
      await scraped.proc.stop("SIGKILL");
    }
  });
});

describe("the SQLite store", () => {
  it("is 0600 (with its WAL and SHM) in a 0700 data dir, and a looser existing one is tightened at start", async () => {
    const dataDir = tempDir("b9-gw-");
    chmodSync(dataDir, 0o755);
    const first = await startGateway({ dataDir });
    const db = join(dataDir, "beta9.db");
    const check = () => {
      expect(mode(dataDir)).toBe(0o700);
      for (const f of [db, `${db}-wal`, `${db}-shm`])
        if (existsSync(f)) expect([f, mode(f)]).toEqual([f, 0o600]);
      expect(existsSync(`${db}-wal`)).toBe(true);
    };
    try {
      check();
    } finally {
      await first.proc.stop("SIGKILL");
    }
    // A data dir from before this fix: readable by everyone.
    chmodSync(dataDir, 0o755);
    for (const f of [db, `${db}-wal`, `${db}-shm`]) if (existsSync(f)) chmodSync(f, 0o644);
    const again = await startGateway({ dataDir });
    try {
      check();
    } finally {
      await again.proc.stop("SIGKILL");
    }
  });
});

describe("requests the HTTP layer refuses", () => {
  it("answers headers too large with 431 in the API's error shape", async () => {
    const res = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = http.request(`${gw.url}/health`, { headers: { "x-padding": "a".repeat(20_000) } });
      req.on("response", (r) => {
        let body = "";
        r.setEncoding("utf8");
        r.on("data", (c: string) => {
          body += c;
        });
        r.on("end", () =>
          resolve({ status: r.statusCode ?? 0, type: String(r.headers["content-type"]), body }),
        );
      });
      req.on("error", reject);
      req.end();
    });
    expect(res.status).toBe(431);
    expect(res.type).toMatch(/application\/json/);
    const body = JSON.parse(res.body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("bad_request");
    expect(body.error.message).toContain("headers are too large");
  });

  describe("with a model served", () => {
    let worker: ModelAgent;
    beforeAll(async () => {
      worker = await startModelAgent(gw);
      await worker.serve("smollm2");
    }, 120_000);
    afterAll(async () => {
      await worker?.agent.proc.stop();
    });

    it("answers deeply nested JSON with 400 in the usual shape, and logs no stack trace", async () => {
      const depth = 20_000;
      const nested = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
      const before = gw.proc.lines.length;
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" },
        body: `{"model":"smollm2","messages":[{"role":"user","content":"hi"}],"metadata":${nested}}`,
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("bad_request");
      expect(body.error.message).toContain("deeper than");
      // Ordinary nesting still goes through.
      const ok = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${gw.adminKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "smollm2",
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 2,
          metadata: { a: { b: { c: [1, [2, [3]]] } } },
        }),
      });
      expect(ok.status).toBe(200);
      expect(gw.proc.lines.slice(before).some((l) => l.includes("Maximum call stack"))).toBe(false);
      expect(gw.proc.lines.slice(before).some((l) => l.includes('"level":50'))).toBe(false);
    }, 60_000);

    // Inference bodies are checked at the edge against the protocol's schemas (openai.ts, ollama.ts):
    // a field the gateway reads, sent with the wrong type, is refused in the API's own error shape
    // before any machine sees it; fields it does not read pass through to the engine.
    it("refuses a wrongly typed field at the gateway, in OpenAI's shape, before a machine sees it", async () => {
      const { id, key } = await keyWithId("openai-bodies");
      const badStream = await post(key, "/v1/chat/completions", {
        model: "smollm2",
        messages,
        stream: "yes",
      });
      expect(badStream).toEqual({
        status: 400,
        body: {
          error: {
            type: "invalid_request_error",
            code: "bad_request",
            param: null,
            message: "`stream` must be true or false",
          },
        },
      });
      const badMax = await post(key, "/v1/completions", { model: "smollm2", prompt: "Hi", max_tokens: "2" });
      expect(badMax).toMatchObject({
        status: 400,
        body: { error: { code: "bad_request", message: "`max_tokens` must be a number" } },
      });
      const noModel = await post(key, "/v1/embeddings", { model: "", input: "hi" });
      expect(noModel).toMatchObject({ status: 400, body: { error: { message: "`model` is required" } } });
      const notObject = await post(key, "/v1/chat/completions", [1]);
      expect(notObject).toMatchObject({
        status: 400,
        body: { error: { message: "the body must be a JSON object" } },
      });
      // Fields the gateway does not read go to the engine as sent.
      const ok = await post(key, "/v1/chat/completions", {
        model: "smollm2",
        messages,
        max_tokens: 2,
        user: "someone",
        metadata: { trace: "abc" },
      });
      expect(ok.status).toBe(200);
      // Only the answered request reached a machine and was metered; the refused ones cost nothing.
      expect(await requestsOf(id)).toBe(1);
    });
    it("refuses a wrongly typed field in Ollama's shape, and lets fields it does not read pass", async () => {
      const { id, key } = await keyWithId("ollama-bodies");
      expect(await post(key, "/api/chat", { model: "smollm2", messages, stream: "yes" })).toEqual({
        status: 400,
        body: { error: "stream must be true or false" },
      });
      expect(await post(key, "/api/embed", { model: "smollm2", input: [1, 2] })).toEqual({
        status: 400,
        body: { error: "input must be a string or an array of strings" },
      });
      expect(await post(key, "/api/generate", { model: "smollm2", prompt: 3 })).toEqual({
        status: 400,
        body: { error: "prompt must be a string" },
      });
      const ok = await post(key, "/api/generate", {
        model: "smollm2",
        prompt: "Hi",
        stream: false,
        keep_alive: "5m",
        options: { num_predict: 2 },
      });
      expect(ok).toMatchObject({ status: 200, body: { done: true } });
      expect(await requestsOf(id)).toBe(1);
    });
  });
});
