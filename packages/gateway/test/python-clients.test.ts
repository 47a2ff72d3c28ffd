import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  type AgentProc,
  type GatewayProc,
  inferenceKey,
  startGateway,
  startModelAgent,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The official Python clients, unmodified: `openai` and `ollama` from PyPI (scripts/requirements-test.txt,
 * in the virtualenv of scripts/python-env) → b9gateway → agent channel → b9agent → builtin engine with
 * the real SmolLM2. Each script in python/ runs its checks and prints one JSON line of what it saw.
 */

let gw: GatewayProc;
let agent: AgentProc;
let key: string;

beforeAll(async () => {
  testPython(); // fail early, with the hint, when the virtualenv is not set up
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const worker = await startModelAgent(gw);
  agent = worker.agent;
  await worker.serve("smollm2");
  key = await inferenceKey(gw, "py");
  await waitFor(
    async () => {
      const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      return res.ok && ((await res.json()) as { data: unknown[] }).data.length === 1;
    },
    { what: "the gateway to list smollm2", timeoutMs: 20_000 },
  );
}, 120_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

interface Failure {
  type: string;
  status: number;
  code?: string | null;
  message: string;
}

interface Report {
  client: string;
  version: string;
  failures: string[];
  models: string[];
  chat: { content: string; model: string; finish_reason?: string; done_reason?: string };
  stream: { chunks: number; content: string; done_reason?: string };
  embeddings: { dims: number };
  unknown_model: Failure;
  wrong_key: Failure;
  async: { content: string; chunks: number };
}

/** Run python/<script> with the test virtualenv's python: its exit code, its JSON line, its stderr. */
function runClient(script: string): Promise<{ code: number | null; report: Report; stderr: string }> {
  const file = resolve(import.meta.dirname, "python", script);
  return new Promise((done, fail) => {
    execFile(
      testPython(),
      [file, gw.url],
      {
        // The key through the environment, not the process list.
        env: {
          ...process.env,
          BETA9_API_KEY: key,
          PYTHONDONTWRITEBYTECODE: "1",
          NO_PROXY: ["127.0.0.1", "localhost", process.env.NO_PROXY].filter(Boolean).join(","),
        },
        timeout: 80_000,
        encoding: "utf8",
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        const line = stdout.trim().split("\n").at(-1) ?? "";
        try {
          done({ code, report: JSON.parse(line) as Report, stderr: stderr + gatewayErrors() });
        } catch {
          fail(
            new Error(
              `${script} printed no JSON line (exit ${code}, ${err?.signal ?? "no signal"}):\n${stdout}\n${stderr}`,
            ),
          );
        }
      },
    );
  });
}

describe("the official Python clients against the gateway", () => {
  it("openai (OpenAI, AsyncOpenAI): lists, chats, streams, embeds; errors map to its exceptions", async () => {
    const { code, report, stderr } = await runClient("openai_client.py");
    expect(report.failures, stderr).toEqual([]);
    expect(code, stderr).toBe(0);
    expect(report.client).toBe("openai");
    expect(report.version).toBe(pinned("openai"));
    expect(report.models).toEqual(["smollm2"]);
    expect(report.chat.content).toMatch(/Paris/);
    expect(report.chat.model).toBe("smollm2");
    expect(report.stream.chunks).toBeGreaterThan(3);
    expect(report.stream.content.length).toBeGreaterThan(0);
    expect(report.embeddings.dims).toBe(576);
    expect(report.unknown_model).toMatchObject({
      type: "NotFoundError",
      status: 404,
      code: "model_not_found",
    });
    expect(report.wrong_key).toMatchObject({ type: "AuthenticationError", status: 401 });
    expect(report.async.content).toMatch(/Paris/);
    expect(report.async.chunks).toBeGreaterThan(3);
  }, 90_000);

  it("ollama (Client, AsyncClient): lists, chats, streams, embeds; errors raise ResponseError", async () => {
    const { code, report, stderr } = await runClient("ollama_client.py");
    expect(report.failures, stderr).toEqual([]);
    expect(code, stderr).toBe(0);
    expect(report.client).toBe("ollama");
    expect(report.version).toBe(pinned("ollama"));
    expect(report.models).toEqual(["smollm2"]);
    expect(report.chat).toMatchObject({ model: "smollm2", done_reason: "stop" });
    expect(report.chat.content).toMatch(/Paris/);
    expect(report.stream.chunks).toBeGreaterThan(3);
    expect(report.stream.done_reason).toBe("length");
    expect(report.stream.content.length).toBeGreaterThan(0);
    expect(report.embeddings.dims).toBe(576);
    expect(report.unknown_model).toMatchObject({ type: "ResponseError", status: 404 });
    expect(report.unknown_model.message).toMatch(/model "nope" not found/);
    expect(report.wrong_key).toMatchObject({ type: "ResponseError", status: 401 });
    expect(report.async.content).toMatch(/Paris/);
    expect(report.async.chunks).toBeGreaterThan(3);
  }, 90_000);
});

/** The gateway's error log lines (pino level ≥ 50), to explain a failed check's 500. */
function gatewayErrors(): string {
  const errors = gw.proc.logs().filter((e) => Number(e.level) >= 50);
  return errors.length ? `\ngateway errors:\n${errors.map((e) => JSON.stringify(e)).join("\n")}` : "";
}

/** The version scripts/requirements-test.txt pins for a Python package. */
function pinned(pkg: string): string {
  const req = readFileSync(resolve(import.meta.dirname, "../../../scripts/requirements-test.txt"), "utf8");
  const version = new RegExp(`^${pkg}==(\\S+)$`, "m").exec(req)?.[1];
  if (!version) throw new Error(`scripts/requirements-test.txt pins no version of ${pkg}`);
  return version;
}
