import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { JobEnvironment } from "@beta9/protocol";
import { startChild } from "../process/child.ts";
import { findExecutable } from "../process/find-executable.ts";
import type { PidfileRegistry } from "../process/pidfiles.ts";

/*
 * A job's Python environment: a virtualenv built with uv outside any sandbox, once per spec (its
 * hash names the folder) and reused by every later job with the same spec. It is built under a
 * temporary name and renamed into place only when complete, so a failed or interrupted build
 * leaves nothing a later job would use. uv never downloads a Python build (UV_PYTHON_DOWNLOADS=never).
 */

export class EnvironmentError extends Error {}

/** Variables passed from the agent's environment to uv: how this machine reaches package indexes. */
const NETWORK_SETTINGS =
  /^(UV_(INDEX|DEFAULT_INDEX|EXTRA_INDEX|FIND_LINKS|SYSTEM_CERTS|NATIVE_TLS|INSECURE_HOST|HTTP_TIMEOUT)\w*|SSL_CERT_(FILE|DIR)|(HTTPS?|ALL|NO)_PROXY|(https?|all|no)_proxy)$/;

/** The key of a spec: the same packages in another order are the same environment. */
export function environmentKey(spec: JobEnvironment): string {
  const canonical = JSON.stringify({
    python: spec.python ?? null,
    packages: [...(spec.packages ?? [])].sort(),
    requirements: spec.requirements ?? null,
  });
  return createHash("sha256").update(canonical).digest("hex").slice(0, 32);
}

export interface BuiltEnvironment {
  /** The virtualenv's folder. */
  dir: string;
  /** The interpreter's own prefix the venv links to (bound read-only into a sandbox). */
  home: string;
  reused: boolean;
}

/** The folder of the interpreter the venv was made from (pyvenv.cfg's `home`, minus bin/). */
async function interpreterHome(venv: string): Promise<string> {
  const cfg = await readFile(join(venv, "pyvenv.cfg"), "utf8");
  const home = /^home\s*=\s*(.+)$/m.exec(cfg)?.[1]?.trim();
  if (!home) throw new EnvironmentError(`${venv}/pyvenv.cfg names no interpreter home`);
  return home.replace(/\/bin\/?$/, "");
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Where the machine's owner lets uv get packages (jobs.package_index, jobs.find_links). */
export interface PackageSources {
  /** A simple index used instead of PyPI; "none": find_links alone. */
  index?: string | undefined;
  findLinks?: readonly string[] | undefined;
}

/** uv pip install's options for the owner's package sources. */
export function packageSourceArgs(sources: PackageSources = {}): string[] {
  const index =
    sources.index === undefined
      ? []
      : sources.index === "none"
        ? ["--no-index"]
        : ["--default-index", sources.index];
  return [...index, ...(sources.findLinks ?? []).flatMap((f) => ["--find-links", f])];
}

/** Builds (or finds) the environment for `spec` under `root`; `onLine` hears uv's output. */
export async function ensureEnvironment(
  spec: JobEnvironment,
  opts: {
    root: string;
    pidfiles?: PidfileRegistry | undefined;
    onLine?: ((line: string) => void) | undefined;
    path?: string | undefined;
    /** Aborted: the build is stopped (the run was cancelled or timed out) and leaves nothing. */
    signal?: AbortSignal | undefined;
    packages?: PackageSources | undefined;
  },
): Promise<BuiltEnvironment> {
  const dir = join(opts.root, environmentKey(spec));
  if (await exists(join(dir, "pyvenv.cfg"))) return { dir, home: await interpreterHome(dir), reused: true };
  const uv = await findExecutable("uv", opts.path ?? process.env.PATH);
  if (uv === null)
    throw new EnvironmentError(
      "uv is not installed on this machine: install it (`pip install uv`) so the agent can build Python environments",
    );
  await mkdir(opts.root, { recursive: true });
  const building = `${dir}.building-${randomBytes(4).toString("hex")}`;
  const env = {
    // The machine's own network settings (a proxy, its CA bundle, an index mirror) reach uv.
    ...Object.fromEntries(Object.entries(process.env).filter(([name]) => NETWORK_SETTINGS.test(name))),
    PATH: opts.path ?? process.env.PATH,
    HOME: process.env.HOME,
    UV_PYTHON_DOWNLOADS: "never",
    UV_CACHE_DIR: join(opts.root, ".uv-cache"),
    UV_NO_CONFIG: "1",
    // Copies, not links into the cache: the environment is bound alone into a sandbox.
    UV_LINK_MODE: "copy",
  };
  const run = async (args: string[]): Promise<void> => {
    if (opts.signal?.aborted) throw new EnvironmentError("the environment build was stopped");
    const child = await startChild({
      name: "uv",
      command: uv,
      args,
      env,
      tail: ["stdout", "stderr"],
      pidfiles: opts.pidfiles,
      onLine: (line) => opts.onLine?.(line),
    });
    const stop = () => void child.stop(5_000);
    opts.signal?.addEventListener("abort", stop, { once: true });
    const exit = await child.exited.finally(() => opts.signal?.removeEventListener("abort", stop));
    if (opts.signal?.aborted) throw new EnvironmentError("the environment build was stopped");
    if (exit.code !== 0) {
      const said = child
        .tail()
        .split("\n")
        .filter((l) => l.trim() !== "")
        .slice(-6)
        .join(" ")
        .replace(/\s+/g, " ")
        .trim();
      throw new EnvironmentError(
        `uv ${args[0] === "venv" ? "could not make the virtualenv" : "could not install the packages"}: ${said || `exit code ${exit.code}`}`,
      );
    }
  };
  try {
    await run([
      "venv",
      "--relocatable",
      "--no-config",
      ...(spec.python ? ["--python", spec.python] : []),
      building,
    ]);
    const python = join(building, "bin", "python");
    const packages = spec.packages ?? [];
    const from = packageSourceArgs(opts.packages);
    if (packages.length > 0) await run(["pip", "install", "--python", python, ...from, "--", ...packages]);
    if (spec.requirements !== undefined && spec.requirements.trim() !== "") {
      const { writeFile } = await import("node:fs/promises");
      const file = `${building}.requirements.txt`;
      await writeFile(file, spec.requirements);
      try {
        await run(["pip", "install", "--python", python, ...from, "-r", file]);
      } finally {
        await rm(file, { force: true });
      }
    }
    try {
      await rename(building, dir);
    } catch (error) {
      // Another job built the same spec meanwhile: theirs is used, ours dropped.
      if (!(await exists(join(dir, "pyvenv.cfg")))) throw error;
      await rm(building, { recursive: true, force: true });
      return { dir, home: await interpreterHome(dir), reused: true };
    }
    return { dir, home: await interpreterHome(dir), reused: false };
  } catch (error) {
    await rm(building, { recursive: true, force: true });
    throw error;
  }
}
