import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { initAgent, startAgent, startGateway, tempDir, waitFor } from "@beta9/test-utils";
import { afterAll, describe, expect, it } from "vitest";

/*
 * From a clone the agent's bin runs the agent bundled from its sources (bin/clone-bundle.js,
 * scripts/bundle.ts): the real bin, the real esbuild, each case with a bundle home of its own
 * (B9AGENT_BUNDLE_DIR) so that the builds are the ones the case made.
 */

const BIN = join(import.meta.dirname, "../bin/b9agent.js");
/**
 * A bundle home of the case's own, beside the clone's (a bundle finds the packages it leaves out, pino
 * and node-llama-cpp among them, from where it lies). The clone's own builds remove it later.
 */
function bundleHome(): string {
  const homes = join(import.meta.dirname, "../.bundle");
  mkdirSync(homes, { recursive: true });
  const home = mkdtempSync(join(homes, "test-"));
  made.push(home);
  return home;
}
const made: string[] = [];
afterAll(() => {
  for (const home of made) rmSync(home, { recursive: true, force: true });
});
const VERSION = JSON.parse(readFileSync(join(import.meta.dirname, "../package.json"), "utf8")).version;

interface BundleRecord {
  id: string;
  inputs: Record<string, [number, number]>;
}

async function b9agent(home: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
    env: { ...process.env, B9AGENT_BUNDLE_DIR: home, ...env },
  });
  return { stdout, stderr };
}

const record = (home: string): BundleRecord => JSON.parse(readFileSync(join(home, "latest.json"), "utf8"));
const builds = (home: string) =>
  readdirSync(home, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
const saveRecord = (home: string, r: BundleRecord) =>
  writeFileSync(join(home, "latest.json"), JSON.stringify(r));

describe("the agent run from a clone", { timeout: 120_000 }, () => {
  it("runs a bundle built from its sources, and builds it again only when one of them changed", async () => {
    const home = bundleHome();
    expect((await b9agent(home, ["version"])).stdout).toContain(`b9agent version ${VERSION}`);
    const first = record(home);
    expect(builds(home)).toEqual([first.id]);
    expect(existsSync(join(home, first.id, "main.js"))).toBe(true);
    expect(existsSync(join(home, first.id, "builtin", "main.js"))).toBe(true);
    // What it was built from: the agent's sources and the workspace packages and dependencies it uses.
    const inputs = Object.keys(first.inputs);
    expect(inputs).toContain("packages/agent/src/main.ts");
    expect(inputs).toContain("packages/agent/src/engines/builtin/main.ts");
    expect(inputs.some((p) => p.startsWith("packages/protocol/src/"))).toBe(true);
    expect(inputs.some((p) => p.startsWith("node_modules/fastify/"))).toBe(true);
    expect(inputs).toContain("package-lock.json");

    // Unchanged sources: the same build runs.
    await b9agent(home, ["version"]);
    expect(record(home).id).toBe(first.id);
    expect(builds(home)).toEqual([first.id]);

    // A source whose mtime or size is not what the build saw (an edit since), or that is gone: rebuilt.
    saveRecord(home, {
      ...first,
      inputs: {
        ...first.inputs,
        "packages/agent/src/main.ts": [1, first.inputs["packages/agent/src/main.ts"]![1]],
      },
    });
    await b9agent(home, ["version"]);
    const second = record(home);
    expect(second.id).not.toBe(first.id);
    expect(second.inputs["packages/agent/src/main.ts"]).toEqual(first.inputs["packages/agent/src/main.ts"]);
    saveRecord(home, { ...second, inputs: { ...second.inputs, "packages/agent/src/gone.ts": [1, 1] } });
    await b9agent(home, ["version"]);
    expect(record(home).id).not.toBe(second.id);
    // The builds before stay a while (a start may have just read the record that named them).
    expect(builds(home)).toHaveLength(3);

    // A record naming a folder that is not one of its builds is not run, whatever that folder holds.
    const planted = mkdtempSync(join(home, "..", "planted-"));
    made.push(planted);
    writeFileSync(join(planted, "main.js"), 'console.log("planted code ran");\n');
    saveRecord(home, { id: `../${basename(planted)}`, inputs: {} });
    const run = await b9agent(home, ["version"]);
    expect(run.stdout).not.toContain("planted code ran");
    expect(run.stdout).toContain(`b9agent version ${VERSION}`);
    expect(record(home).id).toMatch(/^[a-z0-9]+-[0-9a-f]+$/);
    expect(builds(home)).toHaveLength(4);
  });

  it("starts without undici: its code is in a chunk that only a request loads", async () => {
    const home = bundleHome();
    await b9agent(home, ["version"]);
    const dir = join(home, record(home).id);
    // What a start loads: main.js and the files its static imports and re-exports name, transitively
    // (a dynamic import("./x.js") is loaded only when the code that makes it runs).
    const staticImport =
      /(?:\bimport\s*(?:[\w$*{},\s]+from\s*)?|\bexport\s*(?:\*|\{[^}]*\})\s*from\s*)"(\.\/[^"]+)"/g;
    const loaded = new Set<string>();
    const visit = (file: string) => {
      if (loaded.has(file)) return;
      loaded.add(file);
      for (const m of readFileSync(join(dir, file), "utf8").matchAll(staticImport)) visit(m[1]!.slice(2));
    };
    visit("main.js");
    // A string of undici's own code (its global dispatcher's key): in the build, but not in what a start loads.
    const UNDICI = "undici.globalDispatcher.1";
    const files = readdirSync(dir).filter((f) => f.endsWith(".js"));
    const withUndici = files.filter((f) => readFileSync(join(dir, f), "utf8").includes(UNDICI));
    expect(withUndici).toHaveLength(1);
    expect(loaded.size).toBeGreaterThan(1);
    expect([...loaded].filter((f) => withUndici.includes(f))).toEqual([]);
  });

  it("runs the sources as they are when asked, or when it cannot build", async () => {
    const home = bundleHome();
    expect((await b9agent(home, ["version"], { B9AGENT_FROM_SOURCE: "1" })).stdout).toContain(VERSION);
    expect(readdirSync(home)).toEqual([]);
    // A bundle home it cannot write to (a file stands where the folder would be): a sentence, then the
    // sources run.
    const blocked = join(tempDir("b9-bundle-"), "file");
    writeFileSync(blocked, "");
    const run = await b9agent(blocked, ["version"]);
    expect(run.stdout).toContain(`b9agent version ${VERSION}`);
    expect(run.stderr).toMatch(
      /^b9agent: could not bundle the agent's sources \(.+\); running them unbundled$/m,
    );
  });

  it("keeps a build while an agent runs from it, and removes old builds nothing runs", async () => {
    const home = bundleHome();
    const gw = await startGateway();
    try {
      const configPath = await initAgent(gw, { name: "bundled" });
      const agent = await startAgent(configPath, { env: { B9AGENT_BUNDLE_DIR: home } });
      const used = record(home).id;
      const mine = join(home, used, ".running", String(agent.proc.child.pid));
      try {
        expect(existsSync(mine)).toBe(true);
        // Two old builds, long unused: one's only agent has exited (a pid no longer alive), the other's
        // still runs (this test's own pid stands for it).
        const hourAgo = new Date(Date.now() - 3_600_000);
        for (const [name, pid] of [
          ["old-dead", 2 ** 22 + 1],
          ["old-live", process.pid],
        ] as const) {
          mkdirSync(join(home, name, ".running"), { recursive: true });
          writeFileSync(join(home, name, ".running", String(pid)), "");
          writeFileSync(join(home, name, ".used"), "");
          utimesSync(join(home, name, ".used"), hourAgo, hourAgo);
          utimesSync(join(home, name), hourAgo, hourAgo);
        }
        // The running agent's build, made old and no longer the latest: a rebuild must keep it.
        utimesSync(join(home, used, ".used"), hourAgo, hourAgo);
        utimesSync(join(home, used), hourAgo, hourAgo);
        const r = record(home);
        saveRecord(home, { ...r, inputs: { ...r.inputs, "packages/agent/src/main.ts": [1, 1] } });
        await b9agent(home, ["version"]);
        expect(builds(home)).toEqual([used, record(home).id, "old-live"].sort());
      } finally {
        await agent.proc.stop();
      }
      await waitFor(() => !existsSync(mine), {
        what: "the agent's pid gone from its build",
        timeoutMs: 10_000,
      });
    } finally {
      await gw.proc.stop();
    }
  });
});
