import type { EngineName, ModelSpec, ServedModel, ServingCheck, ServingState } from "./engine.ts";
import type { Supervisor } from "./supervisor.ts";

export interface ProcessServedModelInit {
  engine: EngineName;
  model: ModelSpec;
  endpoint: string;
  upstreamModel: string;
  supervisor: Supervisor;
  /** What authenticates the agent to this engine (its key); empty when it has no authentication. */
  headers?: Record<string, string> | undefined;
  health: (signal?: AbortSignal) => Promise<boolean>;
  onStop?: () => void;
}

/** A model served by an engine process of its own (llama-server, vLLM, SGLang, MLX, a private Ollama). */
export class ProcessServedModel implements ServedModel {
  readonly engine: EngineName;
  readonly model: ModelSpec;
  readonly endpoint: string;
  readonly upstreamModel: string;
  readonly supervisor: Supervisor;
  readonly #headers: Record<string, string>;
  readonly #health: (signal?: AbortSignal) => Promise<boolean>;
  readonly #onStop: (() => void) | undefined;

  constructor(init: ProcessServedModelInit) {
    this.engine = init.engine;
    this.model = init.model;
    this.endpoint = init.endpoint;
    this.upstreamModel = init.upstreamModel;
    this.supervisor = init.supervisor;
    this.#headers = init.headers ?? {};
    this.#health = init.health;
    this.#onStop = init.onStop;
  }

  state(): ServingState {
    switch (this.supervisor.state()) {
      case "idle":
      case "starting":
        return "starting";
      case "ready":
        return "ready";
      case "error":
        return "error";
      case "stopping":
      case "stopped":
        return "stopped";
    }
  }

  stderrTail(): string {
    return this.supervisor.stderrTail();
  }

  /** Why the model is in state "error". */
  error(): Error | undefined {
    return this.supervisor.state() === "error" ? this.supervisor.lastError() : undefined;
  }

  async health(signal?: AbortSignal): Promise<boolean> {
    if (this.supervisor.state() !== "ready") return false;
    try {
      return await this.#health(signal);
    } catch {
      return false;
    }
  }

  /** One model per process: it is lost only with the process, which the supervisor reports as "error". */
  async check(signal?: AbortSignal): Promise<ServingCheck> {
    return (await this.health(signal)) ? "serving" : "unknown";
  }

  authHeaders(): Record<string, string> {
    return { ...this.#headers };
  }

  pid(): number | undefined {
    return this.supervisor.pid();
  }

  /** Starts the same engine again, on the same port, after it crashed or was stopped. */
  restart(signal?: AbortSignal): Promise<void> {
    return this.supervisor.start(signal);
  }

  async stop(): Promise<void> {
    await this.supervisor.stop();
    this.#onStop?.();
  }
}
