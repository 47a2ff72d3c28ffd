import { execFile } from "node:child_process";

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program to its end (argument array, no shell) and keep what it printed, whatever its exit. */
export function runCommand(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<Finished> {
  return new Promise((done) => {
    execFile(
      file,
      args,
      {
        env: { ...process.env, ...opts.env },
        cwd: opts.cwd,
        timeout: opts.timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        encoding: "utf8",
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** Loopback addresses the tests' clients must reach directly, never through a proxy from the environment. */
export function noProxy(): string {
  return ["127.0.0.1", "localhost", process.env.NO_PROXY].filter(Boolean).join(",");
}
