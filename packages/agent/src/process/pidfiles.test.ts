import { spawn } from "node:child_process";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { processAlive, tempDir, waitFor } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { readProcessIdentity } from "./identity.ts";
import { PidfileRegistry } from "./pidfiles.ts";

// The processes are real: the real Node binary running testing/forking-child.ts, told apart by --tag.
const forkingChild = fileURLToPath(new URL("./testing/forking-child.ts", import.meta.url));

const tagged = (pid: number | undefined, tag: string) => async () =>
  (await readProcessIdentity(pid ?? 0))?.argv.includes(tag) === true;

describe("reaping what a previous agent left behind", () => {
  it("the pidfile sweep kills a recorded orphan and spares a pid whose start time differs", async () => {
    const dir = tempDir("b9-sweep-");
    const registry = new PidfileRegistry(dir);
    const argv = [forkingChild, "--tag", "orphan"];
    const orphan = spawn(process.execPath, argv, { stdio: "ignore", detached: true });
    const bystander = spawn(process.execPath, [forkingChild, "--tag", "bystander"], { stdio: "ignore" });
    try {
      await waitFor(tagged(orphan.pid, "orphan"));
      await waitFor(tagged(bystander.pid, "bystander"));
      await registry.record(orphan.pid ?? 0, [process.execPath, ...argv], true);
      // The bystander's pid as if an old child had had it: same pid and command, another start time.
      await writeFile(
        join(dir, `${bystander.pid}.json`),
        JSON.stringify({
          pid: bystander.pid,
          startTime: "1",
          command: [process.execPath, forkingChild, "--tag", "bystander"],
          group: false,
          recordedAt: new Date().toISOString(),
        }),
      );
      const result = await registry.sweep({ graceMs: 2_000 });
      expect(result).toEqual({ killed: [orphan.pid], spared: [bystander.pid] });
      await waitFor(() => orphan.exitCode !== null || orphan.signalCode !== null);
      expect(processAlive(bystander.pid ?? 0)).toBe(true);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      orphan.kill("SIGKILL");
      bystander.kill("SIGKILL");
    }
  });

  it("the sweep spares a live process whose command is not the recorded one", async () => {
    const dir = tempDir("b9-sweep-");
    const other = spawn(process.execPath, [forkingChild, "--tag", "other"], { stdio: "ignore" });
    try {
      await waitFor(tagged(other.pid, "other"));
      const identity = await readProcessIdentity(other.pid ?? 0);
      await writeFile(
        join(dir, `${other.pid}.json`),
        JSON.stringify({
          pid: other.pid,
          startTime: identity?.startTime,
          command: ["llama-server", "-m", "x.gguf"],
          group: false,
        }),
      );
      const result = await new PidfileRegistry(dir).sweep({ graceMs: 500 });
      expect(result).toEqual({ killed: [], spared: [other.pid] });
      expect(processAlive(other.pid ?? 0)).toBe(true);
    } finally {
      other.kill("SIGKILL");
    }
  });
});
