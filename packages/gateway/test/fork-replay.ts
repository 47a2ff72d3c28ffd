import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { resolve } from "node:path";
import { testModelPath, testPython, waitFor } from "@beta9/test-utils";

/*
 * The fork's Go agent, as recorded (testdata/fork-agent, see its SOURCES.md): its registration and
 * keepalives, replayed as they were sent with only the token and the reported inference address put
 * in. Its Ollama is played by llama.cpp's own server (xllamacpp) serving the test model under an
 * Ollama-style name: the gateway calls only the OpenAI-compatible /v1 that both servers share.
 */

interface Recorded {
  method: "POST";
  path: string;
  headers: Record<string, string>;
  body: string;
}

export const recorded = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "../testdata/fork-agent/requests.json"), "utf8"),
) as Recorded[];

/** Indexes into `recorded`. */
export const REGISTER = 0;
export const KEEPALIVE_STOPPED = 1;
export const KEEPALIVE_RUNNING = 2;

export const FORK_MODEL = "smollm2:135m";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/** Send recorded request `i` to the gateway at `url`, with the token and where its Ollama runs put in. */
export async function replay(
  url: string,
  i: number,
  opts: { token: string; machineId?: string; ip: string; port: number; models?: string[] },
): Promise<{ status: number; body: Json }> {
  const r = recorded[i]!;
  const body = JSON.parse(r.body) as Record<string, unknown> & {
    inference?: { status?: string; ip?: string; port?: number; models?: string[] };
  };
  if (opts.machineId) body.machine_id = opts.machineId;
  if (body.inference?.status === "running") {
    body.inference.ip = opts.ip;
    body.inference.port = opts.port;
    body.inference.models = opts.models ?? [FORK_MODEL];
  }
  const headers: Record<string, string> = {
    ...r.headers,
    Authorization: r.headers.Authorization!.replace("<TOKEN>", opts.token),
  };
  delete headers["Content-Length"];
  delete headers.Host;
  const res = await fetch(url + r.path, { method: r.method, headers, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Json };
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * llama.cpp's server standing in for a fork machine's Ollama, on `host:port` (in a network namespace
 * when `prefix` is `ip netns exec NS`); resolves once it answers `/health` through `reach`.
 */
export async function startOllamaStandIn(opts: {
  host: string;
  port: number;
  prefix?: string[];
  reach?: (path: string) => Promise<boolean>;
}): Promise<ChildProcess> {
  const fixture = resolve(import.meta.dirname, "../../agent/test/fixtures/llama_server.py");
  const args = [
    testPython(),
    fixture,
    "-m",
    testModelPath(),
    "--host",
    opts.host,
    "--port",
    String(opts.port),
    "-a",
    FORK_MODEL,
    "-c",
    "2048",
  ];
  const cmd = [...(opts.prefix ?? []), ...args];
  const proc = spawn(cmd[0]!, cmd.slice(1), { stdio: "ignore" });
  const reach =
    opts.reach ??
    (async (path: string) =>
      (await fetch(`http://${opts.host}:${opts.port}${path}`).catch(() => null))?.ok === true);
  await waitFor(() => reach("/health"), { what: "llama.cpp's server to load the model", timeoutMs: 60_000 });
  return proc;
}
