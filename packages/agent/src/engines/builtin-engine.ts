import module from "node:module";
import { extname, join } from "node:path";
import { Beta9Error, type Hardware } from "@beta9/protocol";
import type { PidfileRegistry } from "../process/pidfiles.ts";
import {
  type Engine,
  type EngineDetection,
  EngineStartError,
  type ServedModel,
  type ServingCheck,
  type ServingState,
  type StartOptions,
} from "./engine.ts";
import { ENGINE_KEY_ENV, EngineKey } from "./engine-key.ts";
import { machineAccelerators, threadCount } from "./hardware-facts.ts";
import { httpRequest, openAiModelIds, parseJson } from "./http.ts";
import { freeLoopbackPort, LOOPBACK } from "./ports.ts";
import { Supervisor } from "./supervisor.ts";

// main.ts in the repository, main.js in the installed package (scripts/pack compiles it).
const SERVER_MAIN = join(import.meta.dirname, "builtin", `main${extname(import.meta.filename)}`);
const NODE_LLAMA_CPP_VERSION = "3.21.1";

export interface BuiltinEngineOptions {
  pidfiles?: PidfileRegistry | undefined;
  /** Bytes the engine may fill with models; default: what the machine has. */
  memoryBudgetBytes?: number | undefined;
  /** "false" forces the CPU; default lets node-llama-cpp pick Metal, CUDA or Vulkan. */
  gpu?: "auto" | "false" | undefined;
  /**
   * Keep the process running with no model loaded (inference.keep_engine_warm, the agent's default):
   * `warm()` starts it ahead of any model and it stays after the last one, so a start from zero only
   * loads the model. Off: the process starts with the first model and stops with the last.
   */
  keepWarm?: boolean | undefined;
  /** Where the lines of a process started by `warm()` go (a model's start names its own). */
  onLog?: ((line: string) => void) | undefined;
}

type Launch = Pick<StartOptions, "hardware" | "onLog" | "signal">;
type Proc = { supervisor: Supervisor; endpoint: string; key: EngineKey };

/**
 * glibc's malloc settings for the engine (other C libraries ignore them): an engine that served a
 * model and unloaded it stayed ~100 MB above its idle size, as glibc kept llama.cpp's freed memory
 * (an arena per thread, a heap top never trimmed, a mmap threshold raised by the first large free).
 * Two arenas and fixed 4 MiB thresholds give ~45 MB of it back as it is freed; 128 KiB gave ~15 MB
 * more but looked slower per token (a mmap per mid-sized buffer), see bench/engine.
 */
const ENGINE_MALLOC_ENV = {
  MALLOC_ARENA_MAX: "2",
  MALLOC_TRIM_THRESHOLD_: String(4 * 2 ** 20),
  MALLOC_MMAP_THRESHOLD_: String(4 * 2 ** 20),
} as const;

/**
 * The engine that needs no install: one child process on node-llama-cpp (engines/builtin/main.ts)
 * serving every model this agent loads on it, started on first use and stopped with its last model
 * (or, kept warm, started with the agent and kept while it runs).
 */
export class BuiltinEngine implements Engine {
  readonly name = "builtin" as const;
  readonly #o: BuiltinEngineOptions;
  #proc: Proc | undefined;
  #starting: Promise<Proc> | undefined;
  /** The supervisor of a launch under way, so shutdown() reaches a process not yet ready. */
  #launching: Supervisor | undefined;
  readonly #models = new Set<string>();

  constructor(options: BuiltinEngineOptions = {}) {
    this.#o = options;
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    return {
      engine: "builtin",
      installed: true,
      version: `node-llama-cpp ${NODE_LLAMA_CPP_VERSION}`,
      accelerators: machineAccelerators(hardware),
      formats: ["gguf"],
    };
  }

  async start(options: StartOptions): Promise<ServedModel> {
    const { model } = options;
    if (model.format !== "gguf" || !model.path) {
      throw new EngineStartError(
        "builtin",
        `the builtin engine serves GGUF files; ${model.name} is ${model.format}`,
      );
    }
    const proc = await this.#ensureProcess(options);
    const res = await httpRequest(`${proc.endpoint}/admin/models`, {
      headers: proc.key.headers(),
      body: {
        name: model.name,
        path: model.path,
        ...(model.contextSize ? { context_size: model.contextSize } : {}),
      },
      signal: options.signal,
      timeoutMs: 600_000,
    });
    if (!res)
      throw new EngineStartError(
        "builtin",
        `the builtin engine stopped while loading ${model.name}`,
        proc.supervisor.stderrTail(),
      );
    if (res.status >= 400) {
      const err = (parseJson(res.text) as { error?: { code?: string; message?: string } } | undefined)?.error;
      if (err?.code === "insufficient_memory")
        throw new Beta9Error("insufficient_memory", err.message ?? "not enough memory");
      throw new EngineStartError(
        "builtin",
        `could not load ${model.name}: ${err?.message ?? res.text.slice(0, 300)}`,
      );
    }
    this.#models.add(model.name);
    return new BuiltinServedModel(this, proc, options.model);
  }

  /**
   * Start the engine's process now, with no model, when it does not run yet (kept warm). A process
   * that crashes while idle is started again by the next model's start.
   */
  async warm(hardware: Hardware): Promise<void> {
    await this.#ensureProcess({ hardware, onLog: this.#o.onLog });
  }

  async #ensureProcess(options: Launch): Promise<Proc> {
    if (this.#proc && this.#proc.supervisor.state() === "ready") return this.#proc;
    this.#starting ??= this.#launch(options).finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #launch(options: Launch): Promise<Proc> {
    const port = await freeLoopbackPort();
    const endpoint = `http://${LOOPBACK}:${port}`;
    const key = new EngineKey();
    // One core fewer than the machine has: llama.cpp's threads spin-wait, and competing with the
    // engine's own Node thread for the last core cut generation speed several-fold (measured on 2 cores).
    const threads = Math.max(1, threadCount(options.hardware) - 1);
    const args = [SERVER_MAIN, "--port", String(port), "--threads", String(threads)];
    args.push("--gpu", this.#o.gpu ?? "auto");
    if (this.#o.memoryBudgetBytes) args.push("--memory-budget", String(this.#o.memoryBudgetBytes));
    const supervisor = new Supervisor({
      engine: "builtin",
      command: process.execPath,
      args,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_LLAMA_CPP_LOG_LEVEL: "warn",
        // The agent's level is its engine's: debugging a request shows the engine's lines about it too.
        BETA9_LOG_LEVEL: process.env.BETA9_LOG_LEVEL,
        // The agent's compile cache (bin/b9agent.js): a cold start's engine boots in about half the time.
        NODE_COMPILE_CACHE: module.getCompileCacheDir?.(),
        [ENGINE_KEY_ENV]: key.reveal(),
        ...ENGINE_MALLOC_ENV,
      },
      probe: async (signal) =>
        (await httpRequest(`${endpoint}/health`, { headers: key.headers(), signal, timeoutMs: 2_000 }))
          ?.status === 200
          ? "ready"
          : "down",
      onLog: options.onLog,
      pidfiles: this.#o.pidfiles,
      stdinLifeline: true,
      isReadyHint: (line) => line.includes('"event":"listening"'),
      startTimeoutMs: 60_000,
      stopGraceMs: 5_000,
    });
    this.#launching = supervisor;
    try {
      await supervisor.start(options.signal);
    } finally {
      this.#launching = undefined;
    }
    this.#proc = { supervisor, endpoint, key };
    this.#models.clear();
    return this.#proc;
  }

  /** Unload one model; the process goes with the last one unless it is kept warm. */
  async unload(name: string, proc: Proc): Promise<void> {
    if (proc !== this.#proc) return;
    this.#models.delete(name);
    if (proc.supervisor.state() === "ready") {
      await httpRequest(`${proc.endpoint}/admin/models/${encodeURIComponent(name)}`, {
        method: "DELETE",
        headers: proc.key.headers(),
        timeoutMs: 30_000,
      });
    }
    if (this.#models.size === 0 && !this.#o.keepWarm) {
      this.#proc = undefined;
      await proc.supervisor.stop();
    }
  }

  async shutdown(): Promise<void> {
    const proc = this.#proc;
    const launching = this.#launching;
    this.#proc = undefined;
    this.#models.clear();
    await Promise.all([proc?.supervisor.stop(), launching?.stop()]);
  }
}

class BuiltinServedModel implements ServedModel {
  readonly engine = "builtin" as const;
  readonly model: StartOptions["model"];
  readonly endpoint: string;
  readonly upstreamModel: string;
  readonly #engine: BuiltinEngine;
  readonly #proc: Proc;
  #stopped = false;

  constructor(engine: BuiltinEngine, proc: Proc, model: StartOptions["model"]) {
    this.#engine = engine;
    this.#proc = proc;
    this.model = model;
    this.endpoint = proc.endpoint;
    this.upstreamModel = model.name;
  }

  state(): ServingState {
    if (this.#stopped) return "stopped";
    const s = this.#proc.supervisor.state();
    return s === "ready"
      ? "ready"
      : s === "error"
        ? "error"
        : s === "starting" || s === "idle"
          ? "starting"
          : "stopped";
  }

  stderrTail(): string {
    return this.#proc.supervisor.stderrTail();
  }

  async health(signal?: AbortSignal): Promise<boolean> {
    if (this.state() !== "ready") return false;
    return (
      (
        await httpRequest(`${this.endpoint}/health`, {
          headers: this.authHeaders(),
          signal,
          timeoutMs: 2_000,
        })
      )?.status === 200
    );
  }

  /** The engine serves several models: one can be gone while the process runs (unloaded, or a failed reload). */
  async check(signal?: AbortSignal): Promise<ServingCheck> {
    if (this.state() !== "ready") return "unknown";
    const answer = await httpRequest(`${this.endpoint}/v1/models`, {
      headers: this.authHeaders(),
      signal,
      timeoutMs: 5_000,
    });
    const list = answer?.status === 200 ? parseJson(answer.text) : undefined;
    // Only a well-formed list that lacks the model says it is gone; anything else says nothing.
    if (!Array.isArray((list as { data?: unknown } | undefined)?.data)) return "unknown";
    return openAiModelIds(list).includes(this.upstreamModel) ? "serving" : "lost";
  }

  authHeaders(): Record<string, string> {
    return this.#proc.key.headers();
  }

  pid(): number | undefined {
    return this.#proc.supervisor.pid();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#engine.unload(this.model.name, this.#proc);
  }
}
