import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { waitFor } from "@beta9/test-utils";
import { ENGINE_KEY_ENV } from "../../engine-key.ts";

/*
 * For tests: the real engine as a child process, started the way the agent starts it
 * (process.execPath, an argument list, stdin a pipe), with its stdout and stderr kept apart.
 */

export const MAIN = resolve(import.meta.dirname, "../main.ts");

/** The key test engines take requests with (the agent makes a new random one per start). */
export const TEST_ENGINE_KEY = "test-engine-key-0123456789";
/** What authenticates a test's request to a test engine. */
export const engineAuth = { authorization: `Bearer ${TEST_ENGINE_KEY}` } as const;

export interface EngineProcess {
  child: ChildProcess;
  url: string;
  port: number;
  stdout: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logs(): Record<string, unknown>[];
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; headers: Headers }>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

/** One llama.cpp thread: test files run two at a time on two cores, and oversubscribed llama.cpp crawls. */
export async function startEngine(args: string[] = []): Promise<EngineProcess> {
  const child = spawn(process.execPath, [MAIN, "--threads", "1", "--gpu", "false", ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, BETA9_LOG_LEVEL: "debug", [ENGINE_KEY_ENV]: TEST_ENGINE_KEY },
  });
  running.add(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const collect = (into: string[]) => {
    let partial = "";
    return (buf: Buffer) => {
      const lines = (partial + buf.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) if (l.trim() !== "") into.push(l);
    };
  };
  child.stdout.on("data", collect(stdout));
  child.stderr.on("data", collect(stderr));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.on("exit", (code, signal) => {
      running.delete(child);
      done({ code, signal });
    }),
  );
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  await waitFor(
    () => {
      if (gone) throw new Error(`the engine exited before listening:\n${stderr.slice(-20).join("\n")}`);
      return stdout.length > 0;
    },
    { timeoutMs: 30_000, what: "the engine's listening line" },
  );
  const { port } = JSON.parse(stdout[0] ?? "{}") as { port: number };
  const url = `http://127.0.0.1:${port}`;
  return {
    child,
    url,
    port,
    stdout,
    stderr,
    exited,
    logs() {
      const out: Record<string, unknown>[] = [];
      for (const l of stderr) {
        try {
          out.push(JSON.parse(l) as Record<string, unknown>);
        } catch {}
      }
      return out;
    },
    async api<T>(method: string, path: string, body?: unknown) {
      const res = await fetch(url + path, {
        method,
        headers: body === undefined ? engineAuth : { ...engineAuth, "content-type": "application/json" },
        body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T, headers: res.headers };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** The `data:` payloads of an SSE response, parsed (except `[DONE]`, kept as the string). */
export async function readEvents(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => {
      const data = e.slice("data: ".length);
      return data === "[DONE]" ? data : (JSON.parse(data) as unknown);
    });
}
