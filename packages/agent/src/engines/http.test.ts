import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { httpRequest } from "./http.ts";

/*
 * The agent's small requests to its engines, against a server it did not write: Python's
 * `http.server` (HTTP/1.0, bodies ended by closing the connection), and a listener that never answers.
 */

let python: ChildProcess;
let base: string;
const dir = mkdtempSync(join(tmpdir(), "b9-http-"));
const models = JSON.stringify({ object: "list", data: [{ id: "smollm2" }] });

beforeAll(async () => {
  writeFileSync(join(dir, "models.json"), models);
  // Larger than any answer the agent takes from an engine (8 MiB).
  writeFileSync(join(dir, "flood.bin"), Buffer.alloc(9 * 2 ** 20, 0x61));
  python = spawn("python3", ["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const port = await new Promise<string>((resolve, reject) => {
    let out = "";
    python.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /port (\d+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    python.once("exit", (code) => reject(new Error(`python3 -m http.server exited ${code}`)));
  });
  base = `http://127.0.0.1:${port}`;
});

afterAll(() => {
  python?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe("httpRequest against python's http.server", () => {
  it("reads a whole answer ended by the server closing the connection", async () => {
    expect(await httpRequest(`${base}/models.json`)).toEqual({ status: 200, text: models });
  });

  it("gives the status of a refusal with its body, and an empty answer to HEAD", async () => {
    const missing = await httpRequest(`${base}/no-such-model`);
    expect(missing?.status).toBe(404);
    expect(missing?.text).toMatch(/File not found/);
    expect(await httpRequest(`${base}/models.json`, { method: "HEAD" })).toEqual({ status: 200, text: "" });
    // A JSON body goes out; this server has no POST and says so (501).
    expect((await httpRequest(`${base}/admin/models`, { body: { model: "smollm2" } }))?.status).toBe(501);
  });

  it("takes no answer larger than 8 MiB", async () => {
    expect(await httpRequest(`${base}/flood.bin`)).toBeNull();
  });
});

describe("httpRequest to no engine", () => {
  let silent: Server;
  const held: Socket[] = [];
  beforeAll(async () => {
    silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  });
  afterAll(() => {
    for (const s of held) s.destroy();
    silent.close();
  });

  it("is no answer when nothing listens, or when the listener never answers in time", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await httpRequest(`http://127.0.0.1:${port}/health`)).toBeNull();

    const at = (silent.address() as { port: number }).port;
    const started = Date.now();
    expect(await httpRequest(`http://127.0.0.1:${at}/health`, { timeoutMs: 300 })).toBeNull();
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("throws when the caller cancels, rather than reading as no engine", async () => {
    const at = (silent.address() as { port: number }).port;
    const cancel = new AbortController();
    setTimeout(() => cancel.abort(new Error("stopped by the caller")), 100);
    await expect(httpRequest(`http://127.0.0.1:${at}/health`, { signal: cancel.signal })).rejects.toThrow();
  });
});
