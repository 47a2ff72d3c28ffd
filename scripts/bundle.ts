// The agent as one bundle (esbuild): what scripts/pack puts in the agent's package, and what the
// agent's bin runs from a clone (packages/agent/bin/clone-bundle.js starts this file when the bundle it
// finds is older than the sources).
//
//   node scripts/bundle.ts agent --clone HOME     build into a new folder under HOME, record its inputs
//
// An idle Node process holds mostly the code it loaded, and an ES module costs far more than its
// source: the agent's ~1,400 modules (1,241 of them in node_modules, 683 in typebox alone) held ~20 MB
// more than the same code in one file (bench/install/README.md, "the clone runs the bundle").
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { build, type Metafile } from "esbuild";

export const ROOT = resolve(import.meta.dirname, "..");

/**
 * Programs run as a bundle. Entries are named by their path in the output folder: the agent finds its
 * engine's entry at builtin/main.js beside its own code. External: what must stay an installed package,
 * which the program then depends on (native code with its prebuilt binaries, modules loaded by name at
 * run time, the terminal dashboard's ink and react, loaded only when a terminal shows it).
 */
export const BUNDLES: Record<string, { entries: Record<string, string>; external: string[] }> = {
  agent: {
    entries: { main: "src/main.ts", "builtin/main": "src/engines/builtin/main.ts" },
    external: ["node-llama-cpp", "pino", "pino-pretty", "ink", "react"],
  },
};

/**
 * Bundle program `dir` into `outdir`: ES modules, code shared by the entries in chunks beside them,
 * minified (identifiers too: ~1 MB less held by an idle agent than with its names kept). `sourceMaps`
 * (a clone's build): `.map` files beside the code, for `node --enable-source-maps` to give stack traces
 * in the sources' lines; Node reads them only with that flag.
 */
export async function bundleProgram(dir: string, outdir: string, sourceMaps: boolean): Promise<Metafile> {
  const bundle = BUNDLES[dir];
  if (!bundle) throw new Error(`no bundle is defined for ${dir}`);
  const pkg = join(ROOT, "packages", dir);
  const result = await build({
    entryPoints: Object.fromEntries(
      Object.entries(bundle.entries).map(([out, src]) => [out, join(pkg, src)]),
    ),
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node24",
    minify: true,
    ...(sourceMaps ? { sourcemap: "linked" as const } : {}),
    // Licences go to their own file (scripts/pack). Comments kept in the code would also make it
    // non-ASCII, and V8 keeps a non-ASCII source as two bytes per character.
    legalComments: "none",
    charset: "ascii",
    external: bundle.external,
    // The bundled CommonJS packages require Node's modules; an ES module has no require of its own.
    banner: {
      js: 'import{createRequire as __b9Require}from"node:module";const require=__b9Require(import.meta.url);',
    },
    metafile: true,
    logLevel: "warning",
  });
  return result.metafile;
}

/**
 * Files whose change makes a bundle stale besides the modules in it: the workspace's manifests (a
 * package's exports), the lockfile (a dependency's version), this file and the bin that runs it.
 */
function alsoWatched(dir: string): string[] {
  return [
    "package-lock.json",
    "scripts/bundle.ts",
    join("packages", dir, "bin", "clone-bundle.js"),
    ...readdirSync(join(ROOT, "packages")).map((p) => join("packages", p, "package.json")),
  ].filter((p) => existsSync(join(ROOT, p)));
}

/**
 * Build `dir` for a clone into a new folder under `home` (chosen by the bin that runs the builds),
 * then make that folder the one to run: `latest.json` names it with the size and mtime of every file
 * it was built from, written whole (a rename) so a start never reads half of it. Builds no process
 * uses any more are removed.
 */
export async function buildForClone(dir: string, home: string): Promise<string> {
  mkdirSync(home, { recursive: true });
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const out = join(home, id);
  const started = Date.now();
  const meta = await bundleProgram(dir, out, true);
  const inputs: Record<string, [number, number]> = {};
  for (const file of [...Object.keys(meta.inputs), ...alsoWatched(dir)]) {
    const path = relative(ROOT, resolve(ROOT, file));
    const st = statSync(join(ROOT, path), { throwIfNoEntry: false });
    // A file changed while it was being built may be bundled as it was before: never fresh.
    inputs[path] = st && st.mtimeMs < started ? [st.mtimeMs, st.size] : [-1, -1];
  }
  const record = join(home, "latest.json");
  const tmp = `${record}.${id}`;
  writeFileSync(tmp, JSON.stringify({ id, inputs }));
  renameSync(tmp, record);
  prune(home, id);
  return out;
}

/** How long a build stays after its last start, even with no process known to run it. */
const KEEP_MS = 10 * 60_000;

/**
 * Remove the builds other than `keep` that no running agent uses: each agent started from a build
 * leaves its pid in the build's `.running/` (clone-bundle.js), and a build started from in the last
 * minutes is kept whatever its pids say (a start reads `latest.json` a moment before it registers).
 */
function prune(home: string, keep: string): void {
  for (const entry of readdirSync(home, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name === keep) continue;
    const build = join(home, entry.name);
    const used = statSync(join(build, ".used"), { throwIfNoEntry: false })?.mtimeMs ?? 0;
    const built = statSync(build).mtimeMs;
    if (Date.now() - Math.max(used, built) < KEEP_MS) continue;
    const running = join(build, ".running");
    const live = existsSync(running) ? readdirSync(running).filter((pid) => alive(Number(pid))) : [];
    if (live.length === 0) rmSync(build, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

if (import.meta.main) {
  const [dir, flag, home] = process.argv.slice(2);
  if (!dir || flag !== "--clone" || !home || !BUNDLES[dir]) {
    process.stderr.write(`usage: node scripts/bundle.ts ${Object.keys(BUNDLES).join("|")} --clone HOME\n`);
    process.exit(2);
  }
  process.stdout.write(`${await buildForClone(dir, resolve(home))}\n`);
}
