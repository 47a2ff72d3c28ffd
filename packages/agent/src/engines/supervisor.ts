import { type Child, type ChildExit, type ChildSpec, describeExit, startChild } from "../process/child.ts";
import { type EngineName, EngineStartError } from "./engine.ts";

/*
 * One engine process under supervision, after ollama's llm/server.go: the process itself (argument
 * array, process group, stderr tail, pidfile) is process/child.ts's; here is what is about engines:
 * poll its health with a deadline that stretches while it reports loading progress, say why a start
 * failed, and restart after a crash with growing delays, giving up on a crash loop (pm2's God.js).
 */

/** What one readiness probe saw: serving, still loading (stretches the deadline), or not answering. */
export type Readiness = "ready" | "loading" | "down";
export type ReadinessProbe = (signal: AbortSignal) => Promise<Readiness>;

export type SupervisorState = "idle" | "starting" | "ready" | "error" | "stopping" | "stopped";

export interface SupervisorOptions
  extends Pick<
    ChildSpec,
    "command" | "args" | "env" | "cwd" | "redact" | "pidfiles" | "deathSignalPrefix" | "stdinLifeline"
  > {
  engine: EngineName;
  probe: ReadinessProbe;
  /** Lines that show the engine is making progress while loading (e.g. "Loading safetensors checkpoint shards: 50%"). */
  isProgress?: ((line: string) => boolean) | undefined;
  /** A line that says the engine now listens: probe at once instead of at the next interval. */
  isReadyHint?: ((line: string) => boolean) | undefined;
  /** Every line the engine prints, stdout and stderr. */
  onLog?: ((line: string) => void) | undefined;
  onStateChange?: ((state: SupervisorState, error?: Error) => void) | undefined;
  /** Give up when nothing showed progress for this long (default 2 min). */
  startTimeoutMs?: number | undefined;
  /** Give up after this long in any case, progress or not (default 1 h: a 400 GB model loads slowly). */
  maxStartMs?: number | undefined;
  probeIntervalMs?: number | undefined;
  probeTimeoutMs?: number | undefined;
  /** Between SIGTERM and SIGKILL (default 10 s). */
  stopGraceMs?: number | undefined;
  /** After this many crashes in a row, each within `minUptimeMs` of starting, no automatic restart (default 3). */
  maxFastCrashes?: number | undefined;
  /** A run shorter than this counts as a fast crash (default 60 s). */
  minUptimeMs?: number | undefined;
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

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : new DOMException("The start was cancelled", "AbortError");
}

interface Run {
  child: Child;
  readyAt?: number;
  exit?: ChildExit;
  stopping: boolean;
}

export class Supervisor {
  readonly #o: SupervisorOptions;
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
    return this.#run?.exit === undefined ? this.#run?.child.pid : undefined;
  }

  stderrTail(): string {
    return this.#run?.child.tail() ?? "";
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
    // The last run's tail is not this one's.
    this.#run = undefined;
    let run: Run;
    try {
      run = await this.#spawn();
    } catch (error) {
      const failure = new EngineStartError(this.#o.engine, (error as Error).message);
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
    const child = await startChild({
      name: o.engine,
      command: o.command,
      args: o.args,
      env: o.env,
      cwd: o.cwd,
      redact: o.redact,
      pidfiles: o.pidfiles,
      deathSignalPrefix: o.deathSignalPrefix,
      stdinLifeline: o.stdinLifeline,
      onLine: (line) => {
        o.onLog?.(line);
        if (this.#state === "starting" && o.isProgress?.(line)) this.#stretch?.();
        if (this.#state === "starting" && o.isReadyHint?.(line)) this.#poke?.();
      },
      onNote: o.onLog,
    });
    const run: Run = { child, stopping: false };
    this.#run = run;
    void child.exited.then((exit) => this.#onExit(run, exit));
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
    void run.child.exited.then(() => wake.abort());
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
          throw new EngineStartError(o.engine, why, run.child.tail());
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
      `${this.#o.engine} ${describeExit(exit)} while starting`,
      run.child.tail(),
    );
  }

  #onExit(run: Run, exit: ChildExit): void {
    run.exit = exit;
    if (run.stopping || this.#run !== run) return;
    if (this.#state !== "ready") return; // a start in progress reports the exit itself
    const now = Date.now();
    const fast = now - run.child.startedAt < this.#minUptimeMs();
    this.#fastCrashes = fast ? this.#fastCrashes + 1 : 1;
    this.#setState(
      "error",
      new EngineExitedError(
        this.#o.engine,
        `${this.#o.engine} ${describeExit(exit)} after serving for ${Math.round((now - (run.readyAt ?? run.child.startedAt)) / 1000)} s`,
        run.child.tail(),
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
          this.stderrTail(),
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
    await run.child.stop(this.#o.stopGraceMs ?? 10_000);
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
}
