import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/*
 * `node:http` taken without its ES module facade (node-http.ts): the facade reads every export, and
 * its lazy WebSocket loads Node's own bundled undici (fetch and all) into a process that never uses it.
 */

const NODES_UNDICI = "NativeModule internal/deps/undici/undici";

/** Whether a fresh Node 24 that imports `modules` has loaded Node's own undici. */
function loadsNodesUndici(modules: string[]): boolean {
  const imports = modules.map((m) => `await import(${JSON.stringify(m)});`).join("");
  const run = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `${imports}process.stdout.write(String(process.moduleLoadList.includes(${JSON.stringify(NODES_UNDICI)})))`,
    ],
    { encoding: "utf8", env: { PATH: process.env.PATH, HOME: process.env.HOME }, timeout: 60_000 },
  );
  expect(run.stderr).toBe("");
  return JSON.parse(run.stdout) as boolean;
}

describe("node:http without its ES module facade", () => {
  it("is what an ES module import of node:http is not: it leaves Node's own fetch unloaded", () => {
    expect(loadsNodesUndici(["node:http"])).toBe(true);
    expect(loadsNodesUndici([join(import.meta.dirname, "node-http.ts")])).toBe(false);
  });

  it("keeps Node's own fetch out of the agent's modules and @beta9/http", () => {
    const agent = join(import.meta.dirname, "../../agent/src");
    expect(
      loadsNodesUndici([
        join(import.meta.dirname, "index.ts"),
        join(agent, "agent.ts"),
        join(agent, "control-api/server.ts"),
        join(agent, "channel/join.ts"),
      ]),
    ).toBe(false);
  });
});
