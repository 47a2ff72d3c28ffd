import { spawn } from "node:child_process";
import { testModelPath, waitFor } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import type { ModelView } from "./models.ts";
import { type EngineProcess, engineAuth, MAIN, startEngine } from "./testing/engine-process.ts";

/*
 * The engine process's life: memory refusals, a full queue, and the ways it ends (stdin closing when
 * the agent dies, SIGTERM), each with its own real engine and the real SmolLM2-135M.
 */

const engines: EngineProcess[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});
async function engine(args: string[] = []): Promise<EngineProcess> {
  const e = await startEngine(args);
  engines.push(e);
  return e;
}

type Err = {
  error: { code: string; message: string; needed_bytes: number; free_bytes: number; budget_bytes: number };
};
type AdminList = { models: ModelView[]; memory: { used_bytes: number } };

/** SmolLM2 at temperature 0 goes on counting for well over 1500 tokens: a generation that lasts. */
const COUNTING = "1, 2, 3, 4, 5,";
const streamCompletion = (e: EngineProcess, signal: AbortSignal) =>
  fetch(`${e.url}/v1/completions`, {
    method: "POST",
    headers: { ...engineAuth, "content-type": "application/json" },
    body: JSON.stringify({
      model: "smol",
      prompt: COUNTING,
      max_tokens: 400,
      temperature: 0,
      stream: true,
    }),
    signal,
  });

describe("builtin engine: memory budget", () => {
  it("refuses a load that does not fit with the numbers, and leaves nothing loaded", async () => {
    const e = await engine(["--memory-budget", String(50 * 1024 * 1024)]);
    const res = await e.api<Err>("POST", "/admin/models", {
      name: "smol",
      path: testModelPath(),
      context_size: 2048,
    });
    expect(res.status).toBe(507);
    expect(res.body.error.code).toBe("insufficient_memory");
    expect(res.body.error.message).toMatch(
      /needs 0\.\d\d GiB, 50\.0 MiB free of the 50\.0 MiB budget; unload a model/,
    );
    expect(res.body.error.needed_bytes).toBeGreaterThan(300 * 1024 * 1024); // weights + 2048 × 4 KV cache
    expect(res.body.error).toMatchObject({ free_bytes: 50 * 1024 * 1024, budget_bytes: 50 * 1024 * 1024 });
    const after = (await e.api<AdminList>("GET", "/admin/models")).body;
    expect(after.models).toEqual([]);
    expect(after.memory.used_bytes).toBe(0);
    expect((await e.api("GET", "/v1/models")).body).toEqual({ object: "list", data: [] });
  });

  it("budgets the embedding context too: a model that just fits cannot also embed", async () => {
    const probe = await engine(["--memory-budget", "1"]);
    const spec = { name: "smol", path: testModelPath(), context_size: 1024, parallel: 1 };
    const need = (await probe.api<Err>("POST", "/admin/models", spec)).body.error.needed_bytes;
    const e = await engine(["--memory-budget", String(need + 1024 * 1024)]);
    expect((await e.api("POST", "/admin/models", spec)).status).toBe(201);
    const res = await e.api<Err>("POST", "/v1/embeddings", { model: "smol", input: "hello" });
    expect(res.status).toBe(507);
    expect(res.body.error.message).toMatch(/embedding context for smol needs/);
    const chat = await e.api("POST", "/v1/chat/completions", {
      model: "smol",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
    });
    expect(chat.status).toBe(200);
  });
});

describe("builtin engine: queue", () => {
  it("makes requests past the sequences wait, and refuses past the queue with 503 and Retry-After", async () => {
    const e = await engine(["--max-queue", "1"]);
    const spec = { name: "smol", path: testModelPath(), context_size: 512, parallel: 1 };
    expect((await e.api("POST", "/admin/models", spec)).status).toBe(201);
    const abort = new AbortController();
    const first = await streamCompletion(e, abort.signal);
    expect(first.status).toBe(200);
    const second = streamCompletion(e, abort.signal).catch(() => undefined);
    await waitFor(async () => (await e.api<AdminList>("GET", "/admin/models")).body.models[0]?.queued === 1, {
      what: "the second request to wait",
    });
    const third = await e.api<Err>("POST", "/v1/completions", { model: "smol", prompt: "Hi", max_tokens: 4 });
    expect(third.status).toBe(503);
    expect(third.headers.get("retry-after")).toBe("1");
    expect(third.body.error.code).toBe("unavailable");
    abort.abort();
    await second;
    await waitFor(async () => {
      const m = (await e.api<AdminList>("GET", "/admin/models")).body.models[0];
      return m?.active === 0 && m.queued === 0;
    });
  });
});

describe("builtin engine: process", () => {
  it("exits when its stdin closes (the agent died)", async () => {
    const e = await engine();
    e.child.stdin?.end();
    expect(await e.exited).toEqual({ code: 0, signal: null });
    expect(e.logs().some((l) => String(l.reason).startsWith("stdin closed"))).toBe(true);
  });

  it("on SIGTERM stops the generation in flight, unloads and exits 0", async () => {
    const e = await engine();
    expect(
      (await e.api("POST", "/admin/models", { name: "smol", path: testModelPath(), context_size: 512 }))
        .status,
    ).toBe(201);
    const res = await streamCompletion(e, new AbortController().signal);
    const reader = res.body!.getReader();
    await reader.read();
    const sent = performance.now();
    e.child.kill("SIGTERM");
    expect(await e.exited).toEqual({ code: 0, signal: null });
    expect(performance.now() - sent).toBeLessThan(5_000);
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) break;
    expect(e.logs().some((l) => l.msg === "model unloaded")).toBe(true);
  });

  it("refuses a bad flag with the usage and exit code 2, printing nothing on stdout", async () => {
    const child = spawn(process.execPath, [MAIN, "--threads", "many"], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    const code = await new Promise((r) => child.on("exit", r));
    expect(code).toBe(2);
    expect(out).toBe("");
    expect(err).toMatch(/--threads takes a whole number/);
    expect(err).toMatch(/usage:/);
  });
});
