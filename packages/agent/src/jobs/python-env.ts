import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
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
  if (await exists(join(dir, "pyvenv.cfg"))) {
    await markUsed(dir);
    return { dir, home: await interpreterHome(dir), reused: true };
  }
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
      const file = `${building}.requirements.txt`;
      await writeFile(file, spec.requirements);
      try {
        await run(["pip", "install", "--python", python, ...from, "-r", file]);
      } finally {
        await rm(file, { force: true });
      }
    }
    // Its size, counted once: an environment does not change after it is built.
    await writeFile(join(building, SIZE_FILE), String(await treeBytes(building)));
    try {
      await rename(building, dir);
    } catch (error) {
      // Another job built the same spec meanwhile: theirs is used, ours dropped.
      if (!(await exists(join(dir, "pyvenv.cfg")))) throw error;
      await rm(building, { recursive: true, force: true });
      await markUsed(dir);
      return { dir, home: await interpreterHome(dir), reused: true };
    }
    await markUsed(dir);
    return { dir, home: await interpreterHome(dir), reused: false };
  } catch (error) {
    await rm(building, { recursive: true, force: true });
    throw error;
  }
}

/** Where a built environment keeps its size in bytes. */
const SIZE_FILE = ".b9-size";
/** An environment's folder: its key. */
const KEY = /^[0-9a-f]{32}$/;

/** Its folder's modification time is when a job last used it (what least recently used reads). */
async function markUsed(dir: string): Promise<void> {
  const now = new Date();
  await utimes(dir, now, now).catch(() => {});
}

/** Bytes of the files under `dir` (links counted as themselves, not followed). */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(path);
    else total += (await lstat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * Removes the least recently used environments under `root` until those left are `maxBytes` or less
 * together, never one `inUse` says a job holds. An environment is renamed away before it is deleted,
 * so a job never finds half of one. Returns the keys removed.
 */
export async function collectEnvironments(
  root: string,
  maxBytes: number,
  inUse: (key: string) => boolean,
): Promise<string[]> {
  const names = (await readdir(root).catch(() => [] as string[])).filter((n) => KEY.test(n));
  const envs: { key: string; bytes: number; usedAt: number }[] = [];
  for (const key of names) {
    const dir = join(root, key);
    const info = await stat(dir).catch(() => undefined);
    if (info === undefined) continue;
    const recorded = Number(await readFile(join(dir, SIZE_FILE), "utf8").catch(() => ""));
    // Built before sizes were recorded: counted now, and kept for next time.
    const bytes = recorded > 0 ? recorded : await treeBytes(dir);
    if (!(recorded > 0)) await writeFile(join(dir, SIZE_FILE), String(bytes)).catch(() => {});
    envs.push({ key, bytes, usedAt: info.mtimeMs });
  }
  let total = envs.reduce((n, e) => n + e.bytes, 0);
  const removed: string[] = [];
  for (const env of envs.sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break;
    if (inUse(env.key)) continue;
    const doomed = join(root, `.removing-${env.key}-${randomBytes(4).toString("hex")}`);
    await rename(join(root, env.key), doomed);
    total -= env.bytes;
    removed.push(env.key);
    await rm(doomed, { recursive: true, force: true });
  }
  return removed;
}

/** Folders a removal or a build left half-done (the agent stopped in between): never used again. */
export async function sweepPartialEnvironments(root: string): Promise<void> {
  for (const name of await readdir(root).catch(() => [] as string[]))
    if (name.startsWith(".removing-") || name.includes(".building-"))
      await rm(join(root, name), { recursive: true, force: true });
}
