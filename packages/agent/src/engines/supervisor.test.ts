import { readFileSync } from "node:fs";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { PidfileRegistry } from "../process/pidfiles.ts";
import { EngineStartError } from "./engine.ts";
import { freeLoopbackPort } from "./ports.ts";
import { healthReadiness } from "./process-engine.ts";
import { isLoadingProgress } from "./progress.ts";
import { EngineExitedError, Supervisor, type SupervisorOptions } from "./supervisor.ts";

// Every engine here is a real child process: the real Node binary running testing/fake-engine.ts.
const fakeEngine = fileURLToPath(new URL("./testing/fake-engine.ts", import.meta.url));

const started: Supervisor[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

/** Alive and not a zombie (a killed child waiting to be reaped still answers kill(pid, 0)). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (process.platform !== "linux") return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await delay(25);
  }
}

async function fake(flags: string[], options: Partial<SupervisorOptions> = {}) {
  const port = await freeLoopbackPort();
  const endpoint = `http://127.0.0.1:${port}`;
  const logs: string[] = [];
  const supervisor = new Supervisor({
    engine: "llamacpp",
    command: process.execPath,
    args: [fakeEngine, "--port", String(port), ...flags],
    env: { ...process.env },
    probe: (signal) => healthReadiness(endpoint, signal),
    onLog: (line) => logs.push(line),
    probeIntervalMs: 50,
    deathSignalPrefix: null,
    stopGraceMs: 2_000,
    ...options,
  });
  started.push(supervisor);
  return { supervisor, logs, endpoint };
}

describe("supervised engine process", () => {
  it("starts an engine and reports ready once its health answers 200", async () => {
    const { supervisor } = await fake([]);
    await supervisor.start();
    expect(supervisor.state()).toBe("ready");
    expect(alive(supervisor.pid() ?? 0)).toBe(true);
  });

  it("an engine that exits while starting fails the start with its stderr tail", async () => {
    const { supervisor, logs } = await fake([
      "--listen-after-ms",
      "60000",
      "--stderr",
      "loading model.gguf",
      "--stderr",
      "error: bad magic",
      "--exit-after-ms",
      "100",
      "--exit-code",
      "3",
    ]);
    const error = await supervisor.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EngineStartError);
    const startError = error as EngineStartError;
    expect(startError.message).toContain("exited with code 3 while starting");
    expect(startError.stderrTail).toContain("error: bad magic");
    expect(startError.stderrTail).toContain("fatal: out of memory (pretend)");
    expect(supervisor.state()).toBe("error");
    expect(logs).toContain("loading model.gguf");
  });

  it("an engine that never becomes ready is stopped when the deadline passes", async () => {
    const { supervisor } = await fake(["--listen-after-ms", "600000", "--stderr", "waiting for nothing"], {
      startTimeoutMs: 600,
    });
    const t0 = Date.now();
    const error = (await supervisor.start().catch((e: unknown) => e)) as EngineStartError;
    expect(error).toBeInstanceOf(EngineStartError);
    expect(error.message).toMatch(/did not become ready within \d+ s/);
    expect(error.stderrTail).toContain("waiting for nothing");
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(supervisor.pid()).toBeUndefined();
  });

  it("the deadline stretches while the engine answers 503 loading, then it is ready", async () => {
    // Loading lasts 6 s, far past the 2 s allowed without progress: each 503 is progress. (2 s, not
    // less: a fresh node process on a loaded machine may take a second to answer at all.)
    const { supervisor } = await fake(["--loading-ms", "6000"], { startTimeoutMs: 2_000 });
    await supervisor.start();
    expect(supervisor.state()).toBe("ready");
  });

  it("loading log lines stretch the deadline while the server does not listen yet (vLLM-style)", async () => {
    const { supervisor } = await fake(["--listen-after-ms", "6000", "--progress-every-ms", "100"], {
      startTimeoutMs: 2_000,
      isProgress: isLoadingProgress,
    });
    await supervisor.start();
    expect(supervisor.state()).toBe("ready");
  });

  it("progress stops → the start fails with a message that says it stalled", async () => {
    const { supervisor } = await fake(["--loading-ms", "600000"], {
      startTimeoutMs: 2_000,
      maxStartMs: 4_000,
    });
    const error = (await supervisor.start().catch((e: unknown) => e)) as EngineStartError;
    expect(error.message).toMatch(/still not ready after \d+ s, the most a start may take/);
  });

  it("stop sends SIGTERM, then SIGKILL after the grace to an engine that ignores SIGTERM", async () => {
    const { supervisor, logs } = await fake(["--ignore-sigterm"], { stopGraceMs: 500 });
    await supervisor.start();
    const pid = supervisor.pid() ?? 0;
    const t0 = Date.now();
    await supervisor.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    expect(alive(pid)).toBe(false);
    expect(supervisor.state()).toBe("stopped");
    await waitFor(() => logs.includes("got SIGTERM, ignoring it"));
  });

  it("an engine that dies after start goes to state error with its tail, and can be started again", async () => {
    const { supervisor } = await fake(["--exit-after-serving-ms", "400", "--exit-code", "9"]);
    await supervisor.start();
    await waitFor(() => supervisor.state() === "error");
    const error = supervisor.lastError();
    expect(error).toBeInstanceOf(EngineExitedError);
    expect(error?.message).toContain("exited with code 9 after serving");
    expect((error as EngineExitedError).stderrTail).toContain("fatal: out of memory (pretend)");
    await supervisor.start();
    expect(supervisor.state()).toBe("ready");
  });

  it("restarts automatically with growing delays and gives up on a crash loop; a manual start still works", async () => {
    const { supervisor } = await fake(["--exit-after-serving-ms", "150"], {
      autoRestart: { baseDelayMs: 50, maxDelayMs: 400 },
      maxFastCrashes: 3,
      minUptimeMs: 30_000,
    });
    await supervisor.start();
    await waitFor(() => supervisor.gaveUp(), 15_000);
    expect(supervisor.state()).toBe("error");
    expect(supervisor.lastError()?.message).toMatch(/crashed 3 times in a row, each within 30 s of starting/);
    expect(supervisor.restarts()).toBe(2);
    await supervisor.start();
    expect(supervisor.state()).toBe("ready");
    expect(supervisor.gaveUp()).toBe(false);
  });

  it("a missing program fails the start with a sentence saying so", async () => {
    const supervisor = new Supervisor({
      engine: "vllm",
      command: "b9-no-such-engine",
      args: [],
      env: { PATH: "/nonexistent" },
      probe: async () => "down",
      deathSignalPrefix: null,
    });
    await expect(supervisor.start()).rejects.toThrow(/b9-no-such-engine was not found/);
  });

  it("an aborted start stops the engine and rejects with an AbortError", async () => {
    const { supervisor } = await fake(["--listen-after-ms", "600000"]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const error = (await supervisor.start(controller.signal).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe("AbortError");
    expect(supervisor.state()).toBe("stopped");
  });

  it("records the engine in the pidfile directory while it runs and removes it after", async () => {
    const dir = await mkdtemp(join(tmpdir(), "b9-pids-"));
    const { supervisor } = await fake([], { pidfiles: new PidfileRegistry(dir) });
    await supervisor.start();
    expect(await readdir(dir)).toEqual([`${supervisor.pid()}.json`]);
    await supervisor.stop();
    await waitFor(async () => (await readdir(dir)).length === 0);
  });
});

describe("no orphans", () => {
  it("stop reaches the processes an engine forked (its process group)", async () => {
    const { supervisor, logs } = await fake(["--grandchild"]);
    await supervisor.start();
    await waitFor(() => logs.some((line) => line.startsWith("worker ")));
    const worker = Number(logs.find((line) => line.startsWith("worker "))?.split(" ")[1]);
    expect(alive(worker)).toBe(true);
    await supervisor.stop();
    await waitFor(() => !alive(worker), 5_000);
  });
});
