import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { processAlive, waitFor } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { type Child, type ChildSpec, describeExit, type OutputStream, startChild } from "./child.ts";
import { detectDeathSignalPrefix } from "./death-signal.ts";

// Every child here is a real process: the real Node binary running testing/forking-child.ts.
const forkingChild = fileURLToPath(new URL("./testing/forking-child.ts", import.meta.url));
const dyingParent = fileURLToPath(new URL("./testing/dying-parent.ts", import.meta.url));

const started: Child[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.stop(500)));
});

async function start(flags: string[], spec: Partial<ChildSpec> = {}) {
  const lines: { line: string; stream: OutputStream }[] = [];
  const child = await startChild({
    name: "test child",
    command: process.execPath,
    args: [forkingChild, ...flags],
    env: { ...process.env },
    onLine: (line, stream) => lines.push({ line, stream }),
    deathSignalPrefix: null,
    ...spec,
  });
  started.push(child);
  const said = (text: string) => lines.some((l) => l.line.includes(text));
  return { child, lines, said };
}

function grandchildPid(lines: { line: string }[]): number {
  const line = lines.find((l) => /^grandchild \d+ ready$/.test(l.line))?.line ?? "";
  return Number(line.split(" ")[1]);
}

describe("a child process", () => {
  it("stop() ends a child that ignores SIGTERM, and the grandchild it forked that ignores it too", async () => {
    const { child, lines, said } = await start([
      "--ignore-sigterm",
      "--grandchild",
      "--grandchild-ignores-sigterm",
    ]);
    await waitFor(() => said("child ready") && grandchildPid(lines) > 0, { what: "child and grandchild" });
    const grandchild = grandchildPid(lines);
    expect(processAlive(child.pid)).toBe(true);
    expect(processAlive(grandchild)).toBe(true);

    const t0 = Date.now();
    const exit = await child.stop(500);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(exit).toEqual({ code: null, signal: "SIGKILL" });
    expect(said("child got SIGTERM, ignoring it")).toBe(true);
    expect(processAlive(child.pid)).toBe(false);
    await waitFor(() => !processAlive(grandchild), { timeoutMs: 2_000, what: "the grandchild to be gone" });
  });

  it("a grandchild that ignores SIGTERM goes too when the child itself exits on it", async () => {
    const { child, lines, said } = await start(["--grandchild", "--grandchild-ignores-sigterm"]);
    await waitFor(() => said("child ready") && grandchildPid(lines) > 0, { what: "child and grandchild" });
    const grandchild = grandchildPid(lines);
    const exit = await child.stop(10_000);
    expect(exit.signal).toBe("SIGTERM");
    await waitFor(() => !processAlive(grandchild), { timeoutMs: 2_000, what: "the grandchild to be gone" });
  });

  it("passes output on line by line, redacted, and keeps the tail of stderr", async () => {
    const { child, lines } = await start(
      ["--stdout", "hello with key-123", "--stderr", "error: bad magic", "--exit-code", "3"],
      { redact: (line) => line.replaceAll("key-123", "***") },
    );
    const exit = await child.exited;
    expect(describeExit(exit)).toBe("exited with code 3");
    expect(child.exit()).toEqual({ code: 3, signal: null });
    expect(lines).toEqual([
      { line: "hello with ***", stream: "stdout" },
      { line: "error: bad magic", stream: "stderr" },
    ]);
    expect(child.tail()).toBe("error: bad magic");
  });

  it("a missing program fails the start with a sentence saying so", async () => {
    await expect(
      startChild({
        name: "nothing",
        command: "b9-no-such-program",
        args: [],
        env: { PATH: "/nonexistent" },
        deathSignalPrefix: null,
      }),
    ).rejects.toThrow("b9-no-such-program was not found; install it or configure its path");
  });
});

const deathSignal = await detectDeathSignalPrefix();

describe("no orphans", () => {
  it.runIf(deathSignal !== null)(
    "a child dies with the agent when the agent is SIGKILLed (setpriv --pdeathsig)",
    async () => {
      expect(deathSignal).toEqual([expect.stringMatching(/\/setpriv$/), "--pdeathsig", "KILL", "--"]);
      const parent = spawn(process.execPath, [dyingParent], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      parent.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
      });
      await waitFor(() => out.includes("\n"), { what: "the parent to print its child's pid" });
      const childPid = Number(out.trim());
      expect(processAlive(childPid)).toBe(true);
      parent.kill("SIGKILL");
      await waitFor(() => !processAlive(childPid), { timeoutMs: 5_000, what: "the child to die" });
    },
  );
});
