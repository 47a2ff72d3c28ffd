import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

/*
 * What the builtin engine loads before any model is asked for (issue 18): it is kept warm on every
 * volunteer's idle machine, so each module it loads and does not use is memory held for nothing.
 * The real engine's main.ts runs under a resolve hook that writes down every module, and is stopped
 * by a flag it refuses (after its static imports, before it starts llama.cpp).
 */

const dir = mkdtempSync(join(tmpdir(), "b9-engine-imports-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function modulesLoaded(): string[] {
  const trace = join(dir, "trace");
  const hook = join(dir, "hook.mjs");
  writeFileSync(
    hook,
    `import { appendFileSync } from "node:fs";
import { registerHooks } from "node:module";
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    appendFileSync(${JSON.stringify(trace)}, resolved.url + "\\n");
    return resolved;
  },
});
`,
  );
  const run = spawnSync(
    process.execPath,
    ["--import", hook, join(import.meta.dirname, "main.ts"), "--no-such-flag"],
    { encoding: "utf8", env: { PATH: process.env.PATH, HOME: process.env.HOME }, timeout: 60_000 },
  );
  expect(run.stderr).toContain("--no-such-flag");
  expect(run.status).toBe(2);
  return readFileSync(trace, "utf8").trim().split("\n");
}

describe("the builtin engine's imports", () => {
  it("load only the parts of @beta9/http and @beta9/protocol it uses: no undici, no TypeBox, no other schemas", () => {
    const loaded = modulesLoaded();
    expect(loaded.some((url) => url.endsWith("/engines/builtin/server.ts"))).toBe(true);
    expect(loaded.filter((url) => url.includes("/node_modules/undici/"))).toEqual([]);
    // Its request schemas are plain JSON Schema: no schema builder at run time.
    expect(loaded.filter((url) => url.includes("/node_modules/typebox/"))).toEqual([]);
    // Its log goes to the agent through a pipe: no terminal formatter.
    expect(loaded.filter((url) => url.includes("/node_modules/pino-pretty/"))).toEqual([]);
    expect(loaded.filter((url) => /\/packages\/(http|protocol)\/src\/index\.ts$/.test(url))).toEqual([]);
    // The protocol's machine, deployment and job schemas are the gateway's and the agent's, not the engine's.
    expect(
      loaded.filter((url) => /\/packages\/protocol\/src\/(machine|deployment|jobs)\.ts$/.test(url)),
    ).toEqual([]);
  }, 90_000);
});
