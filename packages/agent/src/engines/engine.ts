import type { ConvertedFromView, Hardware } from "@beta9/protocol";

/*
 * One interface for every engine the agent can run: the builtin engine (node-llama-cpp in a child
 * process), Ollama, llama.cpp's llama-server, vLLM, SGLang and MLX. Engines listen on 127.0.0.1 only
 * and, where they can, accept only a key made for each start (engine-key.ts); the agent talks to them
 * in the OpenAI-compatible dialect.
 */

export type EngineName = "builtin" | "ollama" | "llamacpp" | "vllm" | "sglang" | "mlx";
export const ENGINE_NAMES: readonly EngineName[] = ["builtin", "ollama", "llamacpp", "vllm", "sglang", "mlx"];

export type ModelFormat = "gguf" | "safetensors" | "mlx" | "ollama";
export type Accelerator = "cpu" | "cuda" | "metal" | "rocm" | "vulkan";

export interface EngineDetection {
  engine: EngineName;
  installed: boolean;
  version?: string | undefined;
  /** The accelerators this engine can use on this machine. */
  accelerators: Accelerator[];
  formats: ModelFormat[];
  /** When not installed or not usable here: what is missing, in a sentence a person can act on. */
  reason?: string | undefined;
}

/** A model ready to be served: where its weights are and how users will name it. */
export interface ModelSpec {
  /** The name clients use ("smollm2-135m", "llama3.2:1b"). */
  name: string;
  format: ModelFormat;
  /** Local weights: a .gguf file, or a directory for safetensors / MLX. Absent for ollama models. */
  path?: string | undefined;
  /** For format "ollama": the name Ollama knows it by. */
  ollamaName?: string | undefined;
  /** Context length to serve with; the engine's default when absent. */
  contextSize?: number | undefined;
  /** Bytes the model is expected to need (weights + KV cache at contextSize), when known. */
  memoryBytes?: number | undefined;
  /** The stored model's format, when these weights were converted from it for this engine. */
  convertedFrom?: ModelFormat | undefined;
  /** With convertedFrom: the converted directory by the sha256 over its files, its weights' size, its provenance. */
  conversion?: { sha256: string; size: number; converted_from: ConvertedFromView } | undefined;
}

export type ServingState = "starting" | "ready" | "error" | "stopped";

/** What asking the engine found: it serves the model, it answered without it, or no clear answer. */
export type ServingCheck = "serving" | "lost" | "unknown";

/** One model being served by one engine, reachable at a loopback endpoint. */
export interface ServedModel {
  readonly engine: EngineName;
  readonly model: ModelSpec;
  /** Base URL of the engine's OpenAI-compatible API, e.g. http://127.0.0.1:41234 (routes under /v1). */
  readonly endpoint: string;
  /** The model name to send in requests to this endpoint (engines may name it differently). */
  readonly upstreamModel: string;
  state(): ServingState;
  /** Last lines the engine wrote to stderr, for errors and the agent's log. */
  stderrTail(): string;
  health(signal?: AbortSignal): Promise<boolean>;
  /** Whether the engine still serves the model; "lost" only when the engine answered without it. */
  check(signal?: AbortSignal): Promise<ServingCheck>;
  /** Headers that authenticate the agent to the engine (its per-start key); empty for one without auth (Ollama). */
  authHeaders(): Record<string, string>;
  /** Stop serving: unload from a shared engine, or stop the engine's process (graceful, then kill). */
  stop(): Promise<void>;
  /** The engine's process while it runs, when this agent started it (for its CPU time); else undefined. */
  pid?(): number | undefined;
}

export interface StartOptions {
  model: ModelSpec;
  hardware: Hardware;
  /** Every line the engine prints, for the agent's log and the TUI. */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface Engine {
  readonly name: EngineName;
  detect(hardware: Hardware): Promise<EngineDetection>;
  /** Start serving the model; resolves once the endpoint answers. Errors carry the engine's stderr tail. */
  start(options: StartOptions): Promise<ServedModel>;
  /** Stop everything this engine runs. */
  shutdown(): Promise<void>;
}

/** A start that failed; the message says why and the tail shows what the engine said. */
export class EngineStartError extends Error {
  readonly engine: EngineName;
  readonly stderrTail: string;
  constructor(engine: EngineName, message: string, stderrTail = "") {
    super(stderrTail ? `${message}\n--- last lines from ${engine} ---\n${stderrTail}` : message);
    this.name = "EngineStartError";
    this.engine = engine;
    this.stderrTail = stderrTail;
  }
}
