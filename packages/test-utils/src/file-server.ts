import { type ChildProcess, spawn } from "node:child_process";
import { symlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { type Launch, tempDir, waitFor } from "./processes.ts";

/** A folder served by `python3 -m http.server`: a plain third-party file server, not one of ours. */
export interface FileServer {
  port: number;
  /** The URL of a served file, by its base name. */
  url(name: string): string;
  stop(): Promise<void>;
}

/** Serve `files` (linked into a fresh folder) with python's http.server on 127.0.0.1. */
export async function startPythonFileServer(files: readonly string[]): Promise<FileServer> {
  const dir = tempDir("b9-served-");
  for (const f of files) symlinkSync(f, join(dir, basename(f)));
  return servePythonFolder(dir);
}

/**
 * Serve the folder `dir` as it is with python's http.server on `host` (default 127.0.0.1), started
 * with `launch` (e.g. on a cluster host, inside its network namespace).
 */
export async function servePythonFolder(
  dir: string,
  opts: { host?: string } & Launch = {},
): Promise<FileServer> {
  const host = opts.host ?? "127.0.0.1";
  const [command, ...before] = [...(opts.prefix ?? []), "python3"];
  const proc: ChildProcess = spawn(command!, [...before, "-u", "-m", "http.server", "0", "--bind", host], {
    cwd: dir,
    stdio: ["ignore", "pipe", "ignore"],
  });
  let said = "";
  proc.stdout?.on("data", (d: Buffer) => {
    said += d.toString();
  });
  await waitFor(() => /port (\d+)/.test(said), { what: "python3 -m http.server to listen" });
  const port = Number(/port (\d+)/.exec(said)![1]);
  return {
    port,
    url: (name) => `http://${host}:${port}/${encodeURIComponent(name)}`,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill();
      await exited;
    },
  };
}
