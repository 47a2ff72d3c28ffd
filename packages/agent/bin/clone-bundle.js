// From a clone, the agent runs as one bundle of its sources, as it does installed from its package:
// the ~1,400 modules it loads one by one (most of them its dependencies') hold ~20 MB more than the same
// code in one file. scripts/bundle.ts builds the bundle in ~1 s; a start checks it against the size and
// mtime of every file it was built from and rebuilds it when one changed, so an edit to the sources
// runs at the next start. B9AGENT_FROM_SOURCE=1 runs the sources as they are.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = resolve(import.meta.dirname, "../../..");
const SOURCE = join(ROOT, "packages/agent/src/main.ts");
// Where the builds go. Another folder (tests) must be inside the clone too: a bundle finds the packages
// it leaves out (pino, node-llama-cpp) from where it lies.
const HOME = process.env.B9AGENT_BUNDLE_DIR || join(ROOT, "packages/agent/.bundle");

/**
 * The module to import to run the agent: the bundle, built now if the sources changed since; the
 * sources themselves when asked, when esbuild is not installed (a clone installed without its
 * devDependencies) or when the build fails (running the sources then shows why). `longLived`: this
 * process runs the agent (not a one-off command), so the build is kept while it runs.
 */
export function agentEntry(longLived) {
  if (process.env.B9AGENT_FROM_SOURCE === "1" || !existsSync(join(ROOT, "node_modules/esbuild")))
    return pathToFileURL(SOURCE).href;
  for (let attempt = 0; attempt < 2; attempt++) {
    const build = freshBuild() ?? rebuild();
    if (!build) return pathToFileURL(SOURCE).href;
    if (use(build, longLived)) return pathToFileURL(join(build, "main.js")).href;
  }
  return pathToFileURL(SOURCE).href;
}

/** The build `latest.json` names, if every file it was built from is as it was then. */
function freshBuild() {
  let record;
  try {
    record = JSON.parse(readFileSync(join(HOME, "latest.json"), "utf8"));
  } catch {
    return undefined;
  }
  for (const [path, [mtimeMs, size]] of Object.entries(record.inputs ?? {})) {
    const st = statSync(join(ROOT, path), { throwIfNoEntry: false });
    if (!st || st.mtimeMs !== mtimeMs || st.size !== size) return undefined;
  }
  // A build's folder is named by scripts/bundle.ts: nothing else is run from here.
  if (typeof record.id !== "string" || !/^[a-z0-9]+-[0-9a-f]+$/.test(record.id)) return undefined;
  const build = join(HOME, record.id);
  return existsSync(join(build, "main.js")) ? build : undefined;
}

function rebuild() {
  const { NODE_OPTIONS: _, ...env } = process.env;
  try {
    return execFileSync(process.execPath, [join(ROOT, "scripts/bundle.ts"), "agent", "--clone", HOME], {
      cwd: ROOT,
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  } catch (err) {
    const why = String(err.stderr || err.message)
      .trim()
      .split("\n")
      .slice(-3)
      .join(" ");
    process.stderr.write(`b9agent: could not bundle the agent's sources (${why}); running them unbundled\n`);
    return undefined;
  }
}

/**
 * Mark `build` as in use: when it was last started, and, for the agent itself, its pid (removed at
 * exit; a pid that is no longer alive counts for nothing). False when the build went meanwhile.
 */
function use(build, longLived) {
  try {
    writeFileSync(join(build, ".used"), "");
    if (longLived) {
      const running = join(build, ".running");
      mkdirSync(running, { recursive: true });
      const mine = join(running, String(process.pid));
      writeFileSync(mine, "");
      process.once("exit", () => {
        try {
          unlinkSync(mine);
        } catch {}
      });
    }
  } catch {
    // A clone this user cannot write to: nothing to mark; the build is still there to run.
  }
  return existsSync(join(build, "main.js"));
}
