import { type ChildProcess, execFile, spawn } from "node:child_process";
import { type EngineName, EngineStartError } from "./engine.ts";
import { findExecutable } from "./executables.ts";
import type { PidfileRegistry } from "./pidfiles.ts";
import { LineSplitter, StderrTail } from "./stderr-tail.ts";

/*
 * One engine process under supervision, after ollama's llm/server.go: start it with an explicit
 * argument list and environment, watch its exit, poll its health with a deadline that stretches
 * while it reports loading progress, and keep the tail of its stderr for the error. Restarts after
 * a crash back off and give up on a crash loop, after pm2's God.js.
 */

/** What one readiness probe saw: serving, still loading (stretches the deadline), or not answering. */
export type Readiness = "ready" | "loading" | "down";
export type ReadinessProbe = (signal: AbortSignal) => Promise<Readiness>;

export type SupervisorState = "idle" | "starting" | "ready" | "error" | "stopping" | "stopped";

export interface SupervisorOptions {
  engine: EngineName;
  /** Program to run; a bare name is looked up on the PATH of `env`. */
  command: string;
  args: readonly string[];
  /** The whole environment of the engine; nothing is inherited implicitly. */
  env: Record<string, string | undefined>;
  cwd?: string | undefined;
  probe: ReadinessProbe;
  /** Lines that show the engine is making progress while loading (e.g. "Loading safetensors checkpoint shards: 50%"). */
  isProgress?: ((line: string) => boolean) | undefined;
  /** A line that says the engine now listens: probe at once instead of at the next interval. */
  isReadyHint?: ((line: string) => boolean) | undefined;
  /** Every line the engine prints, stdout and stderr. */
  onLog?: ((line: string) => void) | undefined;
  /** Masks what must not reach a log or an error (the engine's key) in each line, before anything keeps it. */
  redact?: ((line: string) => string) | undefined;
  onStateChange?: ((state: SupervisorState, error?: Error) => void) | undefined;
  /** Give up when nothing showed progress for this long (default 2 min). */
  startTimeoutMs?: number | undefined;
  /** Give up after this long in any case, progress or not (default 1 h: a 400 GB model loads slowly). */
  maxStartMs?: number | undefined;
  probeIntervalMs?: number | undefined;
  probeTimeoutMs?: number | undefined;
  /** Between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number | undefined;
  /** Where the process is recorded so a later agent can kill it if this one dies first. */
  pidfiles?: PidfileRegistry | undefined;
  /** Argument prefix that makes the kernel kill the engine when the agent dies; default: detected setpriv. */
  deathSignalPrefix?: readonly string[] | null | undefined;
  /** After this many crashes in a row, each within `minUptimeMs` of starting, no automatic restart (default 3). */
  maxFastCrashes?: number | undefined;
  /** A run shorter than this counts as a fast crash (default 60 s). */
  minUptimeMs?: number | undefined;
  /**
   * Give the engine a stdin pipe that stays open while the agent lives: an engine that watches it
   * (the builtin one does) exits when the agent dies, on every OS, pdeathsig or not.
   */
  stdinLifeline?: boolean | undefined;
  /** Restart automatically after a crash, waiting longer each time (default: off; the owner restarts). */
  autoRestart?: { baseDelayMs?: number; maxDelayMs?: number } | false | undefined;
}

/** The engine stopped on its own after it was serving. */
export class EngineExitedError extends Error {
  readonly engine: EngineName;
  readonly stderrTail: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  constructor(
    engine: EngineName,
    message: string,
    tail: string,
    code: number | null,
    signal: NodeJS.Signals | null,
  ) {
    super(tail ? `${message}\n--- last lines from ${engine} ---\n${tail}` : message);
    this.name = "EngineExitedError";
    this.engine = engine;
    this.stderrTail = tail;
    this.code = code;
    this.signal = signal;
  }
}

let deathSignalProbe: Promise<readonly string[] | null> | undefined;

/**
 * `setpriv --pdeathsig KILL --` where util-linux's setpriv supports it: the kernel then kills the
 * engine when the agent dies, even by SIGKILL. setpriv execs the engine, so the pid stays the same.
 */
export function detectDeathSignalPrefix(): Promise<readonly string[] | null> {
  if (process.platform !== "linux") return Promise.resolve(null);
  deathSignalProbe ??= findExecutable("setpriv", process.env.PATH).then(
    (setpriv) =>
      new Promise((resolve) => {
        if (setpriv === null) return resolve(null);
        // By absolute path: the engine's own PATH may not include /usr/bin.
        execFile(setpriv, ["--help"], { timeout: 5_000, encoding: "utf8" }, (error, stdout, stderr) => {
          const supported = error === null && `${stdout}${stderr}`.includes("--pdeathsig");
          resolve(supported ? [setpriv, "--pdeathsig", "KILL", "--"] : null);
        });
      }),
  );
  return deathSignalProbe;
}

const live = new Set<Supervisor>();

/**
 * For a `process.on("exit")` handler: SIGKILL every engine this agent still runs, synchronously.
 * The graceful path is `stop()`; this is the last resort when the agent is exiting anyway.
 */
export function killAllSupervisedNow(): void {
  for (const supervisor of live) supervisor.killNow();
}

function exitDescription(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : new DOMException("The start was cancelled", "AbortError");
}

interface Run {
  child: ChildProcess;
  pid: number;
  startedAt: number;
  readyAt?: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  stopping: boolean;
}

export class Supervisor {
  readonly #o: SupervisorOptions;
  readonly #tail = new StderrTail();
  #state: SupervisorState = "idle";
  #run: Run | undefined;
  #starting: Promise<void> | undefined;
  #lastError: Error | undefined;
  #fastCrashes = 0;
  #gaveUp = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;
  /** While a start waits: pushes its deadline out (a progress line arrived). */
  #stretch: (() => void) | undefined;
  /** Ends the current wait between readiness probes early (see isReadyHint). */
  #poke: (() => void) | undefined;

  constructor(options: SupervisorOptions) {
    this.#o = options;
  }

  get engine(): EngineName {
    return this.#o.engine;
  }

  state(): SupervisorState {
    return this.#state;
  }

  pid(): number | undefined {
    return this.#run?.exit === undefined ? this.#run?.pid : undefined;
  }

  stderrTail(): string {
    return this.#tail.text();
  }

  /** Why the engine is in state "error", or why the last start failed. */
  lastError(): Error | undefined {
    return this.#lastError;
  }

  /** True after a crash loop: automatic restarts stopped; a manual start() still works. */
  gaveUp(): boolean {
    return this.#gaveUp;
  }

  /**
   * Starts the engine and resolves once its probe says "ready". A manual start always runs, also
   * after a crash loop (it resets the count). Rejects with EngineStartError carrying the stderr
   * tail, or with an AbortError when `signal` aborts (the engine is then stopped).
   */
  start(signal?: AbortSignal): Promise<void> {
    if (this.#state === "ready") return Promise.resolve();
    if (this.#starting !== undefined) return this.#starting;
    if (this.#state === "stopping") return Promise.reject(new Error(`${this.#o.engine} is still stopping`));
    clearTimeout(this.#restartTimer);
    this.#fastCrashes = 0;
    this.#gaveUp = false;
    return this.#startRun(signal);
  }

  #startRun(signal?: AbortSignal): Promise<void> {
    this.#starting = this.#launchAndWait(signal).finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  #setState(state: SupervisorState, error?: Error): void {
    this.#state = state;
    if (error !== undefined) this.#lastError = error;
    this.#o.onStateChange?.(state, error);
  }

  async #launchAndWait(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortError(signal);
    this.#setState("starting");
    this.#tail.clear();
    let run: Run;
    try {
      run = await this.#spawn();
    } catch (error) {
      const failure = new EngineStartError(this.#o.engine, (error as Error).message, this.#tail.text());
      this.#setState("error", failure);
      throw failure;
    }
    try {
      await this.#waitReady(run, signal);
    } catch (error) {
      const stoppedByOwner = run.stopping;
      if (run.exit === undefined) await this.#terminate(run);
      if (signal?.aborted) {
        this.#setState("stopped");
        throw abortError(signal);
      }
      if (stoppedByOwner) {
        throw new EngineStartError(this.#o.engine, `${this.#o.engine} was stopped while starting`);
      }
      this.#fastCrashes++;
      const failure = error instanceof Error ? error : new Error(String(error));
      this.#setState("error", failure);
      throw failure;
    }
    run.readyAt = Date.now();
    this.#setState("ready");
  }

  async #spawn(): Promise<Run> {
    const o = this.#o;
    const prefix = o.deathSignalPrefix === undefined ? await detectDeathSignalPrefix() : o.deathSignalPrefix;
    const argv = [...(prefix ?? []), o.command, ...o.args];
    const [program, ...args] = argv as [string, ...string[]];
    const group = process.platform !== "win32";
    const child = spawn(program, args, {
      env: o.env,
      cwd: o.cwd,
      stdio: [o.stdinLifeline ? "pipe" : "ignore", "pipe", "pipe"],
      // Its own process group, so stop() reaches the workers an engine forks (vLLM, SGLang).
      detached: group,
      windowsHide: true,
    });
    const spawned = new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          error.code === "ENOENT"
            ? new Error(`${program} was not found; install it or configure its path`)
            : new Error(`could not run ${program}: ${error.message}`),
        ),
      );
    });
    const onLine = (raw: string, isStderr: boolean) => {
      const line = o.redact ? o.redact(raw) : raw;
      if (isStderr) this.#tail.push(line);
      o.onLog?.(line);
      if (this.#state === "starting" && o.isProgress?.(line)) this.#stretch?.();
      if (this.#state === "starting" && o.isReadyHint?.(line)) this.#poke?.();
    };
    const out = new LineSplitter((line) => onLine(line, false));
    const err = new LineSplitter((line) => onLine(line, true));
    child.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => err.push(chunk));
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once("exit", (code, sig) => {
        // Wait briefly for the pipes to drain so the tail holds the last words; a grandchild may
        // hold them open forever, hence the bound.
        void Promise.race([closed, new Promise((r) => setTimeout(r, 250))]).then(() => {
          out.end();
          err.end();
          resolve({ code, signal: sig });
        });
      });
    });
    await spawned;
    const pid = child.pid ?? 0;
    const run: Run = { child, pid, startedAt: Date.now(), exited, stopping: false };
    this.#run = run;
    live.add(this);
    void exited.then((exit) => this.#onExit(run, exit));
    if (o.pidfiles !== undefined) {
      try {
        await o.pidfiles.record(pid, [o.command, ...o.args], group);
      } catch (error) {
        o.onLog?.(`could not record ${o.engine} pid ${pid}: ${(error as Error).message}`);
      }
    }
    return run;
  }

  async #waitReady(run: Run, signal?: AbortSignal): Promise<void> {
    const o = this.#o;
    const startTimeoutMs = o.startTimeoutMs ?? 120_000;
    const started = Date.now();
    const hardDeadline = started + (o.maxStartMs ?? 3_600_000);
    let deadline = Math.min(hardDeadline, started + startTimeoutMs);
    let sawProgress = false;
    this.#stretch = () => {
      sawProgress = true;
      deadline = Math.min(hardDeadline, Math.max(deadline, Date.now() + startTimeoutMs));
    };
    const interval = o.probeIntervalMs ?? 500;
    const wake = new AbortController();
    const onAbort = () => wake.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    void run.exited.then(() => wake.abort());
    try {
      for (;;) {
        if (run.exit !== undefined) throw this.#exitedDuringStart(run);
        if (signal?.aborted) throw abortError(signal);
        const readiness = await this.#probeOnce(signal);
        if (run.exit !== undefined) throw this.#exitedDuringStart(run);
        if (readiness === "ready") return;
        if (readiness === "loading") this.#stretch();
        const now = Date.now();
        if (now >= deadline) {
          const seconds = Math.round((now - started) / 1000);
          const why =
            now >= hardDeadline
              ? `${o.engine} was still not ready after ${seconds} s, the most a start may take`
              : sawProgress
                ? `${o.engine} stopped making progress while loading (nothing new for ${Math.round(startTimeoutMs / 1000)} s, ${seconds} s in all)`
                : `${o.engine} did not become ready within ${seconds} s`;
          throw new EngineStartError(o.engine, why, this.#tail.text());
        }
        await new Promise<void>((resolve) => {
          let t: NodeJS.Timeout | undefined;
          const done = () => {
            clearTimeout(t);
            wake.signal.removeEventListener("abort", done);
            this.#poke = undefined;
            resolve();
          };
          this.#poke = done;
          t = setTimeout(done, Math.min(interval, Math.max(0, deadline - now)));
          wake.signal.addEventListener("abort", done, { once: true });
        });
      }
    } finally {
      this.#stretch = undefined;
      this.#poke = undefined;
      signal?.removeEventListener("abort", onAbort);
    }
  }

  async #probeOnce(signal?: AbortSignal): Promise<Readiness> {
    const timeout = AbortSignal.timeout(this.#o.probeTimeoutMs ?? 5_000);
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout]);
    try {
      return await this.#o.probe(combined);
    } catch {
      return "down";
    }
  }

  #exitedDuringStart(run: Run): EngineStartError {
    const exit = run.exit ?? { code: null, signal: null };
    return new EngineStartError(
      this.#o.engine,
      `${this.#o.engine} ${exitDescription(exit.code, exit.signal)} while starting`,
      this.#tail.text(),
    );
  }

  #onExit(run: Run, exit: { code: number | null; signal: NodeJS.Signals | null }): void {
    run.exit = exit;
    if (this.#run === run) live.delete(this);
    void this.#o.pidfiles?.remove(run.pid).catch(() => {});
    if (run.stopping || this.#run !== run) return;
    if (this.#state !== "ready") return; // a start in progress reports the exit itself
    const now = Date.now();
    const fast = now - run.startedAt < this.#minUptimeMs();
    this.#fastCrashes = fast ? this.#fastCrashes + 1 : 1;
    this.#setState(
      "error",
      new EngineExitedError(
        this.#o.engine,
        `${this.#o.engine} ${exitDescription(exit.code, exit.signal)} after serving for ${Math.round((now - (run.readyAt ?? run.startedAt)) / 1000)} s`,
        this.#tail.text(),
        exit.code,
        exit.signal,
      ),
    );
    this.#restartOrGiveUp();
  }

  #minUptimeMs(): number {
    return this.#o.minUptimeMs ?? 60_000;
  }

  /** After a crash (or a failed automatic restart): give up on a crash loop, else maybe restart later. */
  #restartOrGiveUp(): void {
    if (this.#fastCrashes >= (this.#o.maxFastCrashes ?? 3)) {
      this.#gaveUp = true;
      const last = this.#lastError;
      this.#setState(
        "error",
        new EngineExitedError(
          this.#o.engine,
          `${this.#o.engine} crashed ${this.#fastCrashes} times in a row, each within ${Math.round(this.#minUptimeMs() / 1000)} s of starting; it is not restarted again until someone starts it by hand` +
            (last ? ` (last: ${last.message.split("\n")[0]})` : ""),
          this.#tail.text(),
          last instanceof EngineExitedError ? last.code : null,
          last instanceof EngineExitedError ? last.signal : null,
        ),
      );
      return;
    }
    const auto = this.#o.autoRestart;
    if (!auto) return;
    const base = auto.baseDelayMs ?? 1_000;
    const delay = Math.min(auto.maxDelayMs ?? 60_000, base * 2 ** Math.max(0, this.#fastCrashes - 1));
    this.#restarts++;
    this.#restartTimer = setTimeout(() => {
      if (this.#state !== "error" || this.#gaveUp) return;
      this.#startRun().catch(() => {
        if (this.#state === "error") this.#restartOrGiveUp();
      });
    }, delay);
    this.#restartTimer.unref();
  }

  /** How many automatic restarts were scheduled since this supervisor was made. */
  restarts(): number {
    return this.#restarts;
  }

  async #terminate(run: Run): Promise<void> {
    run.stopping = true;
    const grace = this.#o.stopGraceMs ?? 10_000;
    this.#signal(run, "SIGTERM");
    const timer = new Promise<"timeout">((resolve) => {
      const t = setTimeout(() => resolve("timeout"), grace);
      t.unref();
    });
    if ((await Promise.race([run.exited, timer])) === "timeout") {
      this.#signal(run, "SIGKILL");
      await run.exited;
    }
    // SIGKILL to the group also reaches workers that ignored the SIGTERM their leader passed on.
    this.#signal(run, "SIGKILL");
  }

  #signal(run: Run, signal: NodeJS.Signals): void {
    try {
      if (process.platform !== "win32") process.kill(-run.pid, signal);
      else run.child.kill(signal);
    } catch {
      // the group is gone
    }
  }

  /** Stops the engine: SIGTERM to its process group, SIGKILL after the grace. Idempotent. */
  async stop(): Promise<void> {
    clearTimeout(this.#restartTimer);
    const run = this.#run;
    if (run === undefined || run.exit !== undefined) {
      if (this.#state !== "idle") this.#setState("stopped");
      return;
    }
    const wasStarting = this.#starting;
    this.#setState("stopping");
    await this.#terminate(run);
    if (wasStarting !== undefined) await wasStarting.catch(() => {});
    this.#setState("stopped");
  }

  /** Synchronous SIGKILL of the process group, for an agent that is exiting. */
  killNow(): void {
    const run = this.#run;
    if (run === undefined || run.exit !== undefined) return;
    run.stopping = true;
    this.#signal(run, "SIGKILL");
  }
}
