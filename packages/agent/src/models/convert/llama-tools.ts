import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { ModelError } from "../model-error.ts";
import { exists } from "../store.ts";
import { runTool } from "./run-tool.ts";

/*
 * llama.cpp's tools at the very release the builtin engine runs: their source comes from the git
 * bundle node-llama-cpp ships, and they link against node-llama-cpp's own prebuilt libraries, so the
 * converter writes what the engine reads and nothing of llama.cpp is built but the tool itself
 * (README.md beside this file).
 */

/** Where the engine's llama.cpp lies on this machine. */
export interface LlamaSource {
  /** node-llama-cpp's bundle of llama.cpp's source. */
  bundle: string;
  /** The release node-llama-cpp builds ("v0.4.0"). */
  release: string;
  /** The bundle's commit. */
  commit: string;
  /** Folder of the prebuilt libllama/libggml for this platform. */
  binsDir: string;
}

function unavailable(reason: string): ModelError {
  return new ModelError(
    "converter_unavailable",
    `this machine cannot run llama.cpp's quantize tool: ${reason}`,
  );
}

/** The prebuilt binaries' package of node-llama-cpp for this platform (CPU build: quantising needs no GPU). */
function platformPackage(): string {
  if (process.platform === "darwin") return process.arch === "arm64" ? "mac-arm64-metal" : "mac-x64";
  if (process.platform === "win32") return `win-${process.arch}`;
  return `linux-${process.arch}`;
}

/** Find node-llama-cpp's bundle, release and prebuilt libraries. */
export async function findLlamaSource(): Promise<LlamaSource> {
  let root = dirname(fileURLToPath(import.meta.resolve("node-llama-cpp")));
  while (!(await exists(join(root, "llama", "llama.cpp.info.json")))) {
    const up = dirname(root);
    if (up === root) throw unavailable("node-llama-cpp's llama.cpp source was not found");
    root = up;
  }
  const info = JSON.parse(await readFile(join(root, "llama", "llama.cpp.info.json"), "utf8")) as {
    tag?: string;
  };
  const bundle = join(root, "llama", "gitRelease.bundle");
  const pkg = platformPackage();
  const candidates = [
    join(dirname(root), "@node-llama-cpp", pkg, "bins", pkg),
    join(root, "node_modules", "@node-llama-cpp", pkg, "bins", pkg),
  ];
  let binsDir: string | undefined;
  for (const dir of candidates) if (!binsDir && (await exists(dir))) binsDir = dir;
  if (!binsDir) throw unavailable(`node-llama-cpp's prebuilt binaries for ${pkg} are not installed`);
  if (!(await exists(bundle))) throw unavailable("node-llama-cpp's llama.cpp bundle is missing");
  // The bundle's header names its one commit: "<sha> HEAD".
  const head = await readFile(bundle).then((b) =>
    /^([0-9a-f]{40}) HEAD$/m.exec(b.subarray(0, 4096).toString("latin1")),
  );
  if (!head) throw unavailable("node-llama-cpp's llama.cpp bundle has no HEAD");
  return { bundle, release: info.tag ?? "unknown", commit: head[1]!, binsDir };
}

let found: Promise<LlamaSource> | undefined;

/** The engine's llama.cpp, looked up once per agent (again after a failure: it may be installed since). */
export function engineLlama(): Promise<LlamaSource> {
  if (!found) {
    found = findLlamaSource();
    found.catch(() => {
      found = undefined;
    });
  }
  return found;
}

/** The libraries llama-quantize links against, by their file names in the prebuilt folder. */
async function engineLibraries(binsDir: string): Promise<string[]> {
  const names = await readdir(binsDir);
  const wanted = ["llama", "llama-common", "ggml", "ggml-base"];
  return wanted.map((lib) => {
    const file = names.find((n) => new RegExp(`^lib${lib}(\\.v[\\d.]+)?\\.(so|dylib)$`).test(n));
    if (!file) throw unavailable(`lib${lib} is missing from ${binsDir}`);
    return join(binsDir, file);
  });
}

/** "llama.cpp v0.4.0 (80fb11ac73e6)": what a converted record names as the tool's version. */
export function llamaVersion(source: LlamaSource): string {
  return `llama.cpp ${source.release} (${source.commit.slice(0, 12)})`;
}

export interface ToolBuildOptions {
  /** Where built tools are kept (the model store's tools/ folder). */
  toolsDir: string;
  signal?: AbortSignal | undefined;
  pidfiles?: PidfileRegistry | undefined;
  /** The C++ compiler (default: c++ on the PATH). */
  compiler?: string | undefined;
}

/**
 * `dir` made by `make` in a fresh folder beside it, then renamed into place, unless `ready` (a path in
 * it) is there already: a half-made folder is never where a later call looks, and of two racing makers
 * the first one's is used.
 */
export async function makeOnce(
  dir: string,
  ready: string,
  make: (tmp: string) => Promise<void>,
): Promise<void> {
  if (await exists(ready)) return;
  await mkdir(dirname(dir), { recursive: true });
  const tmp = `${dir}.making-${randomBytes(4).toString("hex")}`;
  try {
    await make(tmp);
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (!(await exists(ready))) throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `paths` of the bundle's one commit, checked out into the new folder `into` by `git` (the caller's runner). */
export async function checkoutFromBundle(
  source: LlamaSource,
  into: string,
  paths: readonly string[],
  git: (args: string[], what: string) => Promise<void>,
): Promise<void> {
  await git(["init", "--quiet", into], "git init");
  await git(["-C", into, "fetch", "--quiet", source.bundle, "HEAD"], "reading node-llama-cpp's bundle");
  await git(
    ["-C", into, "checkout", "--quiet", "FETCH_HEAD", "--", ...paths],
    "checking out llama.cpp's sources",
  );
  await rm(join(into, ".git"), { recursive: true, force: true });
}

/**
 * The path of llama-quantize for the engine's release, built on first use (a few seconds) into a
 * folder named by the commit and the libraries' folder.
 */
export async function ensureQuantizeTool(source: LlamaSource, opts: ToolBuildOptions): Promise<string> {
  // Named by the libraries' folder too: the binary finds them by that path (rpath), which a reinstall may move.
  const where = createHash("sha256").update(source.binsDir).digest("hex").slice(0, 8);
  const dir = join(opts.toolsDir, `llama-quantize-${source.commit.slice(0, 12)}-${where}`);
  const binary = join(dir, "llama-quantize");
  await makeOnce(dir, binary, async (building) => {
    const src = join(building, "src");
    const libs = await engineLibraries(source.binsDir);
    const run = async (command: string, args: string[], what: string) => {
      const out = await runTool({
        name: "llama-quantize build",
        command,
        args,
        signal: opts.signal,
        pidfiles: opts.pidfiles,
      });
      if (out.ok) return;
      if (out.stopped) throw new ModelError("conversion_failed", "the quantize tool's build was stopped");
      throw unavailable(`${what} failed: ${out.said}`);
    };
    await mkdir(building, { recursive: true });
    const SOURCES = ["include", "common", "ggml/include", "tools/quantize"];
    await checkoutFromBundle(source, src, SOURCES, (args, what) => run("git", args, what));
    await run(
      opts.compiler ?? "c++",
      [
        "-std=c++17",
        "-O2",
        ...SOURCES.flatMap((d) => ["-I", join(src, d)]),
        join(src, "tools/quantize/main.cpp"),
        join(src, "tools/quantize/quantize.cpp"),
        "-o",
        join(building, "llama-quantize"),
        ...libs,
        `-Wl,-rpath,${source.binsDir}`,
        "-pthread",
      ],
      "compiling llama-quantize (a C++17 compiler is needed)",
    );
    await rm(src, { recursive: true, force: true });
  });
  return binary;
}
