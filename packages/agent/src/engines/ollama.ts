import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { basename } from "node:path";
import { Readable } from "node:stream";
import { loadUndici } from "@beta9/http/undici-lazy";
import type { Hardware } from "@beta9/protocol";
import type { Response } from "undici";
import { findExecutable } from "../process/find-executable.ts";
import {
  type Accelerator,
  type Engine,
  type EngineDetection,
  EngineStartError,
  type ModelFormat,
  type ModelSpec,
  type ServedModel,
  type ServingCheck,
  type ServingState,
  type StartOptions,
} from "./engine.ts";
import { capture } from "./executables.ts";
import { machineAccelerators } from "./hardware-facts.ts";
import { httpRequest, parseJson } from "./http.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  envFor,
  notInstalled,
  pathOf,
  startEngineProcess,
} from "./process-engine.ts";
import type { Supervisor } from "./supervisor.ts";

/*
 * Ollama as an engine. An Ollama the owner already runs on 127.0.0.1:11434 is reused (its models
 * stay where they are); otherwise the agent starts `ollama serve` on a free loopback port of its
 * own. Models are pulled with /api/pull, loaded with an empty /api/generate, served through
 * Ollama's OpenAI-compatible /v1 under their Ollama names, and unloaded with keep_alive 0. Ollama's
 * server has no authentication: it stays on 127.0.0.1, where local users can still reach it.
 */

const FORMATS: ModelFormat[] = ["ollama", "gguf"];
export const OLLAMA_DEFAULT_URL = `http://${LOOPBACK}:11434`;

export interface OllamaOptions extends ExternalEngineOptions {
  /** A running Ollama to reuse when it answers /api/version; null never reuses. Default 127.0.0.1:11434. */
  reuseUrl?: string | null | undefined;
  /** OLLAMA_MODELS for an Ollama the agent starts; Ollama's default (~/.ollama/models) when absent. */
  modelsDir?: string | undefined;
  /**
   * keep_alive sent when loading, and OLLAMA_KEEP_ALIVE of an Ollama the agent starts. Default -1:
   * the agent (the gateway's scale-to-zero) decides when a model leaves memory, not a 5-minute timer.
   */
  keepAlive?: string | undefined;
  /** How long loading a model may take (default 30 min). */
  loadTimeoutMs?: number | undefined;
}

export interface OllamaPullProgress {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

/** The environment and arguments of `ollama serve` on a loopback port (never 0.0.0.0). */
export function buildOllamaServe(input: {
  port: number;
  modelsDir?: string | undefined;
  keepAlive: string;
}): {
  args: string[];
  env: Record<string, string>;
} {
  const env: Record<string, string> = {
    OLLAMA_HOST: `${LOOPBACK}:${input.port}`,
    OLLAMA_KEEP_ALIVE: input.keepAlive,
  };
  if (input.modelsDir !== undefined) env.OLLAMA_MODELS = input.modelsDir;
  return { args: ["serve"], env };
}

/**
 * `ollama --version` prints "ollama version is 0.12.6" when a server answers, and
 * "Warning: could not connect to a running Ollama instance\nWarning: client version is 0.3.4" when none does.
 */
export function parseOllamaVersion(output: string): string | undefined {
  return /ollama version is\s+(\S+)/.exec(output)?.[1] ?? /client version is\s+(\S+)/.exec(output)?.[1];
}

/** The names in an /api/tags or /api/ps answer. */
export function ollamaModelNames(body: unknown): string[] {
  if (typeof body !== "object" || body === null) return [];
  const models = (body as { models?: unknown }).models;
  if (!Array.isArray(models)) return [];
  return models.flatMap((m) => {
    if (typeof m !== "object" || m === null) return [];
    const { name, model } = m as { name?: unknown; model?: unknown };
    return typeof name === "string" ? [name] : typeof model === "string" ? [model] : [];
  });
}

/** Whether `name` is among `names`, where "llama3.2" means "llama3.2:latest". */
export function hasOllamaModel(names: readonly string[], name: string): boolean {
  const full = name.includes(":") ? name : `${name}:latest`;
  return names.includes(name) || names.includes(full);
}

/** A name Ollama accepts for a model imported from a GGUF file. */
export function ollamaNameFor(model: ModelSpec): string {
  const cleaned = model.name
    .toLowerCase()
    .replace(/[^a-z0-9._:/-]+/g, "-")
    .replace(/^[^a-z0-9]+/, "");
  return cleaned === "" ? "b9-model" : cleaned;
}

/** One line of /api/pull's NDJSON: progress, or the error that ends the pull. */
export function parsePullLine(line: string): OllamaPullProgress | { error: string } | null {
  const value = parseJson(line);
  if (typeof value !== "object" || value === null) return null;
  const record = value as Record<string, unknown>;
  if (typeof record.error === "string") return { error: record.error };
  if (typeof record.status !== "string") return null;
  const progress: OllamaPullProgress = { status: record.status };
  if (typeof record.digest === "string") progress.digest = record.digest;
  if (typeof record.total === "number") progress.total = record.total;
  if (typeof record.completed === "number") progress.completed = record.completed;
  return progress;
}

async function* ndjsonLines(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.trim() !== "") yield line;
  }
  pending += decoder.decode();
  if (pending.trim() !== "") yield pending;
}

function describeProgress(name: string, p: OllamaPullProgress): string {
  if (p.total !== undefined && p.total > 0) {
    const percent = Math.floor(((p.completed ?? 0) / p.total) * 100);
    return `ollama pull ${name}: ${p.status} ${percent}%`;
  }
  return `ollama pull ${name}: ${p.status}`;
}

interface OllamaServer {
  url: string;
  /** Present when the agent started this Ollama; absent for the owner's own. */
  supervisor?: Supervisor;
}

class OllamaServedModel implements ServedModel {
  readonly engine = "ollama" as const;
  readonly model: ModelSpec;
  readonly endpoint: string;
  readonly upstreamModel: string;
  readonly #server: OllamaServer;
  readonly #unload: (served: OllamaServedModel) => Promise<void>;
  #stopped = false;

  constructor(
    model: ModelSpec,
    server: OllamaServer,
    name: string,
    unload: (s: OllamaServedModel) => Promise<void>,
  ) {
    this.model = model;
    this.#server = server;
    this.endpoint = server.url;
    this.upstreamModel = name;
    this.#unload = unload;
  }

  state(): ServingState {
    if (this.#stopped) return "stopped";
    const supervised = this.#server.supervisor?.state();
    if (supervised === "error") return "error";
    if (supervised === "stopping" || supervised === "stopped") return "stopped";
    return "ready";
  }

  stderrTail(): string {
    return this.#server.supervisor?.stderrTail() ?? "";
  }

  async health(signal?: AbortSignal): Promise<boolean> {
    return (await this.check(signal)) === "serving";
  }

  /** Ollama loads a model it has on disk by itself; one gone from /api/tags (`ollama rm`) is lost. */
  async check(signal?: AbortSignal): Promise<ServingCheck> {
    if (this.state() !== "ready") return "unknown";
    const tags = await httpRequest(`${this.endpoint}/api/tags`, { signal });
    const body = tags?.status === 200 ? parseJson(tags.text) : undefined;
    if (!Array.isArray((body as { models?: unknown } | undefined)?.models)) return "unknown";
    return hasOllamaModel(ollamaModelNames(body), this.upstreamModel) ? "serving" : "lost";
  }

  authHeaders(): Record<string, string> {
    return {};
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#unload(this);
  }
}

export class OllamaEngine implements Engine {
  readonly name = "ollama" as const;
  readonly #options: OllamaOptions;
  readonly #served = new Set<OllamaServedModel>();
  #server: Promise<OllamaServer> | undefined;

  constructor(options: OllamaOptions = {}) {
    this.#options = options;
  }

  #program(): string {
    return this.#options.binary ?? "ollama";
  }

  #reuseUrl(): string | null {
    return this.#options.reuseUrl === undefined ? OLLAMA_DEFAULT_URL : this.#options.reuseUrl;
  }

  #keepAlive(): string {
    return this.#options.keepAlive ?? "-1";
  }

  /** The version an Ollama at `url` reports, or null when nothing answers there. */
  async serverVersion(url: string, signal?: AbortSignal): Promise<string | null> {
    const answer = await httpRequest(`${url}/api/version`, { signal, timeoutMs: 2_000 });
    if (answer === null || answer.status !== 200) return null;
    const version = (parseJson(answer.text) as { version?: unknown } | undefined)?.version;
    return typeof version === "string" ? version : null;
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const reuse = this.#reuseUrl();
    const [path, running] = await Promise.all([
      findExecutable(this.#program(), pathOf(this.#options)),
      reuse === null ? Promise.resolve(null) : this.serverVersion(reuse),
    ]);
    if (path === null && running === null) {
      return notInstalled(
        this.name,
        FORMATS,
        "Ollama is not installed (https://ollama.com/download) and none is running",
      );
    }
    let version = running ?? undefined;
    if (version === undefined && path !== null) {
      const out = await capture(path, ["--version"], {
        env: envFor(this.#options, { OLLAMA_HOST: "127.0.0.1:1" }),
      });
      version = out === null ? undefined : parseOllamaVersion(`${out.stdout}\n${out.stderr}`);
    }
    const usable: Accelerator[] = ["cpu", "cuda", "metal", "rocm"];
    return {
      engine: this.name,
      installed: true,
      version,
      accelerators: machineAccelerators(hardware).filter((a) => usable.includes(a)),
      formats: FORMATS,
    };
  }

  /** The Ollama to use: the owner's running one, else one the agent starts (once). */
  #ensureServer(options: { onLog?: (line: string) => void; signal?: AbortSignal }): Promise<OllamaServer> {
    const current = this.#server;
    if (current !== undefined) {
      return current.then((server) => {
        const state = server.supervisor?.state();
        if (state === "error" || state === "stopped" || state === "stopping") {
          this.#server = undefined;
          return this.#ensureServer(options);
        }
        return server;
      });
    }
    const next = this.#openServer(options);
    this.#server = next;
    next.catch(() => {
      if (this.#server === next) this.#server = undefined;
    });
    return next;
  }

  async #openServer(options: {
    onLog?: (line: string) => void;
    signal?: AbortSignal;
  }): Promise<OllamaServer> {
    const reuse = this.#reuseUrl();
    if (reuse !== null && (await this.serverVersion(reuse, options.signal)) !== null) {
      options.onLog?.(`using the Ollama already running at ${reuse}`);
      return { url: reuse };
    }
    const { endpoint, supervisor } = await startEngineProcess({
      engine: this.name,
      options: this.#options,
      program: this.#program(),
      missing: "Ollama is not installed here and none is running (https://ollama.com/download)",
      command: (port) =>
        buildOllamaServe({ port, modelsDir: this.#options.modelsDir, keepAlive: this.#keepAlive() }),
      probe: (url) => async (signal) => ((await this.serverVersion(url, signal)) === null ? "down" : "ready"),
      onLog: options.onLog,
      signal: options.signal,
    });
    return { url: endpoint, supervisor };
  }

  /** Downloads a model into Ollama (POST /api/pull), reporting each progress line. */
  async pull(
    name: string,
    options: {
      onProgress?: (p: OllamaPullProgress) => void;
      onLog?: (line: string) => void;
      signal?: AbortSignal;
    } = {},
  ): Promise<void> {
    const server = await this.#ensureServer(options);
    await this.#pullFrom(server.url, name, options);
  }

  async #pullFrom(
    url: string,
    name: string,
    options: {
      onProgress?: (p: OllamaPullProgress) => void;
      onLog?: (line: string) => void;
      signal?: AbortSignal;
    },
  ): Promise<void> {
    let response: Response;
    try {
      const { fetch } = await loadUndici();
      response = await fetch(`${url}/api/pull`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: name, stream: true }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new EngineStartError(this.name, `could not reach Ollama at ${url} to pull ${name}`);
    }
    if (response.body === null || !response.ok) {
      const text = await response.text().catch(() => "");
      throw new EngineStartError(
        this.name,
        `Ollama refused to pull ${name} (HTTP ${response.status}) ${text}`.trim(),
      );
    }
    let last: OllamaPullProgress | undefined;
    let lastLogged = "";
    for await (const line of ndjsonLines(response.body)) {
      const parsed = parsePullLine(line);
      if (parsed === null) continue;
      if ("error" in parsed)
        throw new EngineStartError(this.name, `Ollama could not pull ${name}: ${parsed.error}`);
      last = parsed;
      options.onProgress?.(parsed);
      const described = describeProgress(name, parsed);
      if (described !== lastLogged) options.onLog?.(described);
      lastLogged = described;
    }
    if (last?.status !== "success") {
      throw new EngineStartError(this.name, `the pull of ${name} ended before Ollama said "success"`);
    }
  }

  /** Names of the models Ollama has on disk (GET /api/tags). */
  async installed(url: string, signal?: AbortSignal): Promise<string[]> {
    const answer = await httpRequest(`${url}/api/tags`, { signal });
    if (answer === null || answer.status !== 200) {
      throw new EngineStartError(this.name, `Ollama at ${url} did not list its models`);
    }
    return ollamaModelNames(parseJson(answer.text));
  }

  /** Names of the models Ollama holds in memory (GET /api/ps). */
  async loaded(signal?: AbortSignal): Promise<string[]> {
    const server = await this.#server;
    if (server === undefined) return [];
    const answer = await httpRequest(`${server.url}/api/ps`, { signal });
    return answer?.status === 200 ? ollamaModelNames(parseJson(answer.text)) : [];
  }

  /** Imports a GGUF file as an Ollama model: upload the blob (unless Ollama has it), then /api/create. */
  async #importGguf(url: string, model: ModelSpec, signal?: AbortSignal): Promise<string> {
    const path = model.path;
    if (path === undefined)
      throw new EngineStartError(this.name, `model ${model.name} has no GGUF file to import`);
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    const digest = `sha256:${hash.digest("hex")}`;
    const head = await httpRequest(`${url}/api/blobs/${digest}`, { method: "HEAD", signal });
    if (head?.status !== 200) {
      const { fetch } = await loadUndici();
      const upload = await fetch(`${url}/api/blobs/${digest}`, {
        method: "POST",
        body: Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>,
        duplex: "half",
        ...(signal === undefined ? {} : { signal }),
      }).catch((error: unknown) => {
        if (signal?.aborted) throw error;
        throw new EngineStartError(this.name, `could not send the model file to Ollama at ${url}`);
      });
      if (!upload.ok) {
        const text = await upload.text().catch(() => "");
        throw new EngineStartError(
          this.name,
          `Ollama refused the model file (HTTP ${upload.status}): ${text.slice(0, 300)}`,
        );
      }
      // Nothing to read in a success; let the connection go rather than hold a body nobody reads.
      await upload.body?.cancel().catch(() => {});
    }
    const name = ollamaNameFor(model);
    const created = await httpRequest(`${url}/api/create`, {
      body: { model: name, files: { [basename(path)]: digest }, stream: false },
      signal,
      timeoutMs: 600_000,
    });
    if (created?.status !== 200) {
      throw new EngineStartError(
        this.name,
        `Ollama could not create ${name} from ${basename(path)}: ${created?.text ?? "no answer"}`,
      );
    }
    return name;
  }

  async start(options: StartOptions): Promise<ServedModel> {
    const { model, signal } = options;
    if (!FORMATS.includes(model.format)) {
      throw new EngineStartError(this.name, `Ollama cannot serve ${model.format} models`);
    }
    const server = await this.#ensureServer(options);
    let name: string;
    if (model.format === "gguf") {
      name = await this.#importGguf(server.url, model, signal);
    } else {
      name = model.ollamaName ?? model.name;
      if (!hasOllamaModel(await this.installed(server.url, signal), name)) {
        await this.#pullFrom(server.url, name, { onLog: options.onLog, ...(signal ? { signal } : {}) });
      }
    }
    // An empty generate request loads the model and returns once it is in memory.
    const loadedAnswer = await httpRequest(`${server.url}/api/generate`, {
      body: { model: name, keep_alive: this.#keepAliveValue(), stream: false },
      signal,
      timeoutMs: this.#options.loadTimeoutMs ?? 1_800_000,
    });
    if (loadedAnswer?.status !== 200) {
      throw new EngineStartError(
        this.name,
        `Ollama could not load ${name}: ${loadedAnswer === null ? "no answer" : `HTTP ${loadedAnswer.status} ${loadedAnswer.text}`}`,
        server.supervisor?.stderrTail() ?? "",
      );
    }
    const served = new OllamaServedModel(model, server, name, (s) => this.#release(s, server));
    this.#served.add(served);
    return served;
  }

  /** keep_alive as Ollama takes it: a number of seconds, or a duration string. */
  #keepAliveValue(): string | number {
    const keepAlive = this.#keepAlive();
    return /^-?\d+$/.test(keepAlive) ? Number(keepAlive) : keepAlive;
  }

  /** Unloads a model from memory now (keep_alive 0); it stays on disk. */
  async unload(url: string, name: string): Promise<void> {
    await httpRequest(`${url}/api/generate`, { body: { model: name, keep_alive: 0 }, timeoutMs: 60_000 });
  }

  async #release(served: OllamaServedModel, server: OllamaServer): Promise<void> {
    this.#served.delete(served);
    const stillUsed = [...this.#served].some((s) => s.upstreamModel === served.upstreamModel);
    if (!stillUsed) await this.unload(server.url, served.upstreamModel);
    // An Ollama the agent started goes when its last model does; the owner's own stays.
    if (server.supervisor !== undefined && ![...this.#served].some((s) => s.endpoint === server.url)) {
      await server.supervisor.stop();
    }
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.#served].map((served) => served.stop()));
    const server = await this.#server?.catch(() => undefined);
    await server?.supervisor?.stop();
    this.#server = undefined;
  }
}
