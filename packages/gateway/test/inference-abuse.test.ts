import { readFileSync } from "node:fs";
import net from "node:net";
import { type GatewayProc, type ModelAgent, startGateway, startModelAgent, waitFor } from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * What the security review (issue 10, findings 9 and 11) did to a real b9gateway, done again: token
 * limits escaped by abandoning requests or sending them at once, and bodies read before the key was
 * checked (finding 10, clients that stop reading, is cluster/client-stall.test.ts). Real gateway, agent, builtin engine
 * with SmolLM2, the real `openai` client and raw sockets.
 */

let gw: GatewayProc;
let worker: ModelAgent;

// biome-ignore lint/suspicious/noExplicitAny: the usage answer's shape is checked by each assertion.
type Json = any;

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  worker = await startModelAgent(gw);
  await worker.serve("smollm2");
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

async function key(body: Record<string, unknown>): Promise<{ id: string; key: string }> {
  const res = await gw.api<{ id: string; key: string }>("POST", "/api/v1/keys", body);
  expect(res.status).toBe(201);
  return res.body;
}

/** The key's usage as the usage API groups it (undefined before its first request is written). */
async function usageOf(id: string): Promise<Json> {
  const res = await gw.api<Json>("GET", "/api/v1/usage?group_by=key");
  expect(res.status).toBe(200);
  return res.body.groups.find((g: Json) => g.group === id);
}

const openai = (apiKey: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0 });
/** About 600 tokens of prompt (2,400 characters). */
const longPrompt = [
  {
    role: "user" as const,
    content: `Summarise this list: ${Array.from({ length: 300 }, (_, i) => `item${i % 10}`).join(" ")}`,
  },
];

describe("token limits (finding 9)", () => {
  it("meters abandoned whole and streamed requests with their prompt's tokens", async () => {
    const leaver = await key({ name: "leaver", scopes: ["inference"], tpm_limit: 1_000_000 });
    const oa = openai(leaver.key);
    // Whole answers abandoned while the engine works on them.
    for (let i = 0; i < 2; i++) {
      const abort = new AbortController();
      const asked = oa.chat.completions.create(
        { model: "smollm2", messages: longPrompt, max_tokens: 300 },
        { signal: abort.signal },
      );
      setTimeout(() => abort.abort(), 1_500);
      await expect(asked).rejects.toThrow();
    }
    // Streams abandoned after two chunks.
    for (let i = 0; i < 2; i++) {
      const stream = await oa.chat.completions.create({
        model: "smollm2",
        messages: longPrompt,
        max_tokens: 300,
        stream: true,
      });
      let chunks = 0;
      for await (const _ of stream) if (++chunks === 2) break;
    }
    // An Ollama stream abandoned after its first two lines.
    const res = await fetch(`${gw.url}/api/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${leaver.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "smollm2", messages: longPrompt, options: { num_predict: 300 } }),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let lines = 0;
    while (lines < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      lines += Buffer.from(value).toString().split("\n").length - 1;
    }
    await reader.cancel();
    await waitFor(async () => (await usageOf(leaver.id))?.requests === 5, {
      what: "the five abandoned requests to be metered",
    });
    const used = await usageOf(leaver.id);
    expect(used.errors).toBe(5);
    // Each one's prompt (about 600 tokens) counts, though no answer said its usage.
    expect(used.prompt_tokens).toBeGreaterThan(5 * 400);
  });

  it("lets requests sent at once see each other's reservations: one of eight passes tpm 100", async () => {
    const small = await key({ name: "small", scopes: ["inference"], tpm_limit: 100 });
    const oa = openai(small.key);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        oa.chat.completions.create({ model: "smollm2", messages: longPrompt, max_tokens: 4 }),
      ),
    );
    const answered = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason);
    expect(answered.length).toBe(1);
    for (const err of refused) expect(err).toMatchObject({ status: 429, code: "rate_limited" });
    // What the one answered used is charged: the key is in debt for minutes.
    const after = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${small.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "smollm2", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
    });
    expect(after.status).toBe(429);
    expect(Number(after.headers.get("retry-after"))).toBeGreaterThan(60);
  });
});

describe("bodies before the key (finding 11)", () => {
  const MB = 1024 * 1024;

  /** Send headers of a `size`-byte POST to `path` without a key, then `first` bytes of it; the status line that comes back. */
  function unauthenticated(
    path: string,
    size: number,
    first: number,
  ): Promise<{ status: number; sent: number }> {
    return new Promise((resolve, reject) => {
      const url = new URL(gw.url);
      const s = net.connect(Number(url.port), url.hostname);
      let sent = 0;
      let head = "";
      s.on("error", () => undefined);
      s.on("data", (b: Buffer) => {
        head += b.toString("latin1");
        const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
        if (m) {
          resolve({ status: Number(m[1]), sent });
          s.destroy();
        }
      });
      s.on("close", () => reject(new Error(`closed without an answer after ${sent} bytes`)));
      s.write(
        `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`,
      );
      const chunk = Buffer.alloc(first, 0x20);
      s.write(chunk, () => {
        sent += first;
      });
    });
  }

  it("answers 401 while an unauthenticated client is still sending its body", async () => {
    for (const path of ["/v1/chat/completions", "/v1/embeddings", "/api/chat", "/api/embed"]) {
      // 64 KiB of 15 MB sent, and no more until the answer: it can come only before the body is read.
      const answer = await Promise.race([
        unauthenticated(path, 15 * MB, 64 * 1024),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`${path}: no answer while the body was unsent`)), 10_000),
        ),
      ]);
      expect(answer.status).toBe(401);
    }
  });

  it("keeps the gateway's memory bounded under many unauthenticated large bodies", async () => {
    const rss = () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${gw.proc.child.pid}/status`, "utf8"));
      return Number(m?.[1] ?? 0) * 1024;
    };
    const base = rss();
    let peak = base;
    const sample = setInterval(() => {
      peak = Math.max(peak, rss());
    }, 50);
    const body = Buffer.alloc(15 * MB, 0x20);
    const url = new URL(gw.url);
    // Forty clients each send all 15 MB as fast as the gateway takes them.
    const clients = Array.from(
      { length: 40 },
      () =>
        new Promise<void>((resolve) => {
          const s = net.connect(Number(url.port), url.hostname);
          s.on("error", () => resolve());
          s.on("close", () => resolve());
          s.on("data", () => s.destroy());
          s.write(
            `POST /v1/chat/completions HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
          );
          s.write(body);
        }),
    );
    try {
      await Promise.all(clients);
    } finally {
      clearInterval(sample);
    }
    peak = Math.max(peak, rss());
    // 40 × 15 MB read would be 600 MB; refused unread, the gateway holds next to nothing of them.
    expect(peak - base).toBeLessThan(250 * MB);
  }, 60_000);

  it("refuses a chat body over its route's limit with 413, in the API's error shape", async () => {
    const app = await key({ name: "big", scopes: ["inference"] });
    const body = JSON.stringify({
      model: "smollm2",
      messages: [{ role: "user", content: "x".repeat(5 * MB) }],
      max_tokens: 2,
    });
    // Every time: the caller's body is read and dropped, so the answer is never lost to a reset.
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${app.key}`, "content-type": "application/json" },
        body,
      });
      expect(res.status).toBe(413);
      const err = ((await res.json()) as Json).error;
      expect(err.code).toBe("payload_too_large");
      expect(err.message).toMatch(/at most 4\.0 MiB/);
    }
  });
});
