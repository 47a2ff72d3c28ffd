import { execFile } from "node:child_process";
import { open } from "node:fs/promises";

/**
 * The environment an engine runs with: the agent's own, minus the agent's settings (B9AGENT_* and
 * friends), plus what the engine needs. Engines are third-party programs; they get nothing of ours.
 */
export function engineEnv(
  extra: Record<string, string | undefined> = {},
  base: NodeJS.ProcessEnv = process.env,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(base)) {
    if (/^(B9|BETA9)/i.test(key)) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

export interface Captured {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short command (a version query) with an argument array; null if it could not run or timed out. */
export function capture(
  command: string,
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): Promise<Captured | null> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      {
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 15_000,
        maxBuffer: 1024 * 1024,
        encoding: "utf8",
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (error !== null && (typeof error.code !== "number" || error.killed)) {
          resolve(null);
          return;
        }
        resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** The interpreter named on a script's `#!` line, when it is a Python; null for binaries and other scripts. */
export async function pythonOfScript(path: string): Promise<string | null> {
  let head = "";
  try {
    const file = await open(path, "r");
    try {
      const buffer = Buffer.alloc(256);
      const { bytesRead } = await file.read(buffer, 0, 256, 0);
      head = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await file.close();
    }
  } catch {
    return null;
  }
  const match = /^#!\s*(\S+)/.exec(head);
  const interpreter = match?.[1];
  return interpreter !== undefined && /python[\d.]*$/.test(interpreter) ? interpreter : null;
}

/**
 * A Python package's version from its metadata, without importing it: `import vllm` takes seconds
 * (it imports torch), reading the metadata takes milliseconds.
 */
export async function pythonPackageVersion(
  python: string,
  distribution: string,
  env?: Record<string, string | undefined>,
): Promise<string | null> {
  const result = await capture(
    python,
    ["-c", "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))", distribution],
    { ...(env === undefined ? {} : { env }), timeoutMs: 15_000 },
  );
  if (result === null || result.code !== 0) return null;
  const version = result.stdout.trim().split("\n").pop()?.trim();
  return version !== undefined && version !== "" ? version : null;
}

/**
 * The version of the Python package a console script belongs to (vllm, mlx_lm.server), read with
 * the interpreter on its `#!` line; null for a binary or when that Python lacks the package.
 */
export async function scriptPackageVersion(
  script: string,
  distribution: string,
  env?: Record<string, string | undefined>,
): Promise<string | null> {
  const python = await pythonOfScript(script);
  return python === null ? null : pythonPackageVersion(python, distribution, env);
}
