import { type ChildProcess, spawn } from "node:child_process";
import { detectDeathSignalPrefix } from "./death-signal.ts";
import { LineSplitter, OutputTail } from "./lines.ts";
import type { PidfileRegistry } from "./pidfiles.ts";
import { signalProcessTree } from "./signals.ts";

/*
 * One child process of the agent, whoever asked for it (an engine's supervisor, a job's runner):
 * started with an argument array and an explicit environment, in a process group of its own so that
 * stop() reaches whatever it forks, its output passed on line by line with the last lines kept, and
 * recorded in a pidfile so a later agent reaps it if this one dies first.
 */

export type OutputStream = "stdout" | "stderr";

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildSpec {
  /** What the child is, for the agent's own notes about it ("llamacpp", a job's id). */
  name: string;
  /** Program to run; a bare name is looked up on the PATH of `env`. */
  command: string;
  args: readonly string[];
  /** The whole environment of the child; nothing is inherited implicitly. */
  env: Record<string, string | undefined>;
  cwd?: string | undefined;
  /** Every line the child prints, after `redact`. */
  onLine?: ((line: string, stream: OutputStream) => void) | undefined;
  /** Masks what must not reach a log or an error (a key) in each line, before anything keeps it. */
  redact?: ((line: string) => string) | undefined;
  /** Which streams `tail()` keeps (default: stderr, where programs say why they died). */
  tail?: readonly OutputStream[] | undefined;
  /** The agent's own notes about the child (a pidfile it could not write). */
  onNote?: ((message: string) => void) | undefined;
  /** Where the child is recorded so a later agent can kill it if this one dies first. */
  pidfiles?: PidfileRegistry | undefined;
  /** Argument prefix that makes the kernel kill the child when the agent dies; default: detected setpriv. */
  deathSignalPrefix?: readonly string[] | null | undefined;
  /**
   * Give the child a stdin pipe that stays open while the agent lives: a child that watches it (the
   * builtin engine does) exits when the agent dies, on every OS, pdeathsig or not.
   */
  stdinLifeline?: boolean | undefined;
  /** Lines longer than this many characters are passed on once, cut with a note (a job's logs). */
  cutLinesAt?: number | undefined;
}

/** "exited with code 3", "was killed by SIGKILL": for errors that say how a process ended. */
export function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

const live = new Set<Child>();

/**
 * For a `process.on("exit")` handler: SIGKILL every child this agent still runs, synchronously.
 * The graceful path is `stop()`; this is the last resort when the agent is exiting anyway.
 */
export function killAllChildrenNow(): void {
  for (const child of live) child.killNow();
}

/** A running (or finished) child process; made by startChild(). */
export class Child {
  readonly pid: number;
  readonly startedAt = Date.now();
  /** Resolves once the process exited and its pipes drained (briefly: a grandchild may hold them). */
  readonly exited: Promise<ChildExit>;
  readonly #proc: ChildProcess;
  readonly #tail: OutputTail;
  #exit: ChildExit | undefined;

  constructor(proc: ChildProcess, exited: Promise<ChildExit>, tail: OutputTail) {
    this.#proc = proc;
    this.pid = proc.pid ?? 0;
    this.#tail = tail;
    this.exited = exited.then((exit) => {
      this.#exit = exit;
      live.delete(this);
      return exit;
    });
    live.add(this);
  }

  /** How the process ended; undefined while it runs. */
  exit(): ChildExit | undefined {
    return this.#exit;
  }

  /** The last lines of the streams the spec asked to keep. */
  tail(): string {
    return this.#tail.text();
  }

  /**
   * SIGTERM to the process group, SIGKILL after `graceMs` if the leader is still there, and SIGKILL
   * to the group once the leader is gone, for what it forked and what ignored the SIGTERM.
   */
  async stop(graceMs: number): Promise<ChildExit> {
    if (this.#exit !== undefined) return this.#exit;
    this.#signal("SIGTERM");
    const timer = new Promise<"timeout">((resolve) => {
      const t = setTimeout(() => resolve("timeout"), graceMs);
      t.unref();
    });
    if ((await Promise.race([this.exited, timer])) === "timeout") this.#signal("SIGKILL");
    const exit = await this.exited;
    this.#signal("SIGKILL");
    return exit;
  }

  /** Synchronous SIGKILL of the process group, for an agent that is exiting. */
  killNow(): void {
    if (this.#exit === undefined) this.#signal("SIGKILL");
  }

  #signal(signal: NodeJS.Signals): void {
    if (process.platform === "win32") this.#proc.kill(signal);
    else signalProcessTree(this.pid, true, signal);
  }
}

/**
 * Starts a child and resolves once it runs (and is recorded in the pidfiles); rejects with a
 * sentence a person can act on when the program is missing or cannot run.
 */
export async function startChild(spec: ChildSpec): Promise<Child> {
  const prefix =
    spec.deathSignalPrefix === undefined ? await detectDeathSignalPrefix() : spec.deathSignalPrefix;
  const [program, ...args] = [...(prefix ?? []), spec.command, ...spec.args] as [string, ...string[]];
  const group = process.platform !== "win32";
  const proc = spawn(program, args, {
    env: spec.env,
    cwd: spec.cwd,
    stdio: [spec.stdinLifeline ? "pipe" : "ignore", "pipe", "pipe"],
    // Its own process group, so stop() reaches the processes it forks (vLLM's workers, a job's).
    detached: group,
    windowsHide: true,
  });
  const spawned = new Promise<void>((resolve, reject) => {
    proc.once("spawn", () => resolve());
    proc.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "ENOENT"
          ? new Error(`${program} was not found; install it or configure its path`)
          : new Error(`could not run ${program}: ${error.message}`),
      ),
    );
  });
  const tail = new OutputTail();
  const kept = spec.tail ?? ["stderr"];
  const splitter = (stream: OutputStream) =>
    new LineSplitter(
      (raw) => {
        const line = spec.redact ? spec.redact(raw) : raw;
        if (kept.includes(stream)) tail.push(line);
        spec.onLine?.(line, stream);
      },
      { cutLinesAt: spec.cutLinesAt },
    );
  const out = splitter("stdout");
  const err = splitter("stderr");
  proc.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
  proc.stderr?.on("data", (chunk: Buffer) => err.push(chunk));
  const closed = new Promise<void>((resolve) => proc.once("close", () => resolve()));
  const exited = new Promise<ChildExit>((resolve) => {
    proc.once("exit", (code, signal) => {
      // Wait briefly for the pipes to drain so the tail holds the last words; a grandchild may hold
      // them open forever, hence the bound.
      void Promise.race([closed, new Promise((r) => setTimeout(r, 250))]).then(() => {
        out.end();
        err.end();
        resolve({ code, signal });
      });
    });
  });
  await spawned;
  const child = new Child(proc, exited, tail);
  const pidfiles = spec.pidfiles;
  if (pidfiles !== undefined) {
    try {
      await pidfiles.record(child.pid, [spec.command, ...spec.args], group);
    } catch (error) {
      spec.onNote?.(`could not record ${spec.name} pid ${child.pid}: ${(error as Error).message}`);
    }
    // After the record is written, so a quick exit cannot leave a stale file behind.
    void child.exited.then(() => pidfiles.remove(child.pid)).catch(() => {});
  }
  return child;
}
