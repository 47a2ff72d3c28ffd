import { open } from "node:fs/promises";
import { isAbsolute } from "node:path";
import type { Logger } from "@beta9/http/logger";
import {
  type GgufFileInfo,
  GgufInsights,
  InsufficientMemoryError,
  type Llama,
  readGgufFileInfo,
} from "node-llama-cpp";
import { EngineError, modelNotFound } from "./errors.ts";
import { GgufHeaderCache } from "./gguf-cache.ts";
import { LoadedModel } from "./loaded-model.ts";
import { estimateLoad, formatBytes } from "./memory.ts";

export const DEFAULT_PARALLEL = 4;
export const DEFAULT_CONTEXT_SIZE = 4096;

export interface LoadRequest {
  name: string;
  path: string;
  context_size?: number | undefined;
  gpu_layers?: number | "auto" | "max" | undefined;
  parallel?: number | undefined;
}

export interface ModelView {
  name: string;
  path: string;
  context_size: number | null;
  memory_bytes: number;
  state: "loading" | "ready" | "unloading";
  parallel: number | null;
  gpu_layers: number | null;
  /** Requests generating now, and waiting for a sequence. */
  active: number;
  queued: number;
  requests: number;
  /** Tokens generated since load, counted as they are sampled (a stopped generation stops the count). */
  tokens_generated: number;
  cancelled: number;
  chat_template: string | null;
}

interface Entry {
  name: string;
  path: string;
  state: "loading" | "ready" | "unloading";
  /** Bytes held for a load in progress (the estimate); 0 once the model reports its own usage. */
  reservedBytes: number;
  ready: Promise<LoadedModel>;
  model?: LoadedModel;
  abort: AbortController;
  unloaded?: Promise<void>;
}

export interface RegistryOptions {
  llama: Llama;
  /** Bytes of RAM + VRAM all loaded models together may use. */
  budget: number;
  threads: number;
  maxQueue: number;
  log: Logger;
}

/**
 * The models this engine serves, by name. Loads are checked against the memory budget before any
 * memory is taken (with node-llama-cpp's estimates), so a refused load leaves nothing behind; several
 * loads at once each reserve their estimate while they run.
 */
export class ModelRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #opts: RegistryOptions;
  readonly #headers = new GgufHeaderCache<{ fileInfo: GgufFileInfo; insights: GgufInsights }>();

  constructor(opts: RegistryOptions) {
    this.#opts = opts;
  }

  get budget(): number {
    return this.#opts.budget;
  }

  usedBytes(): number {
    let used = 0;
    for (const e of this.#entries.values()) used += e.model ? e.model.memoryBytes() : e.reservedBytes;
    return used;
  }

  /** Throws insufficient_memory (507) when `bytes` more would not fit; synchronous, so check-and-take is atomic. */
  reserve(bytes: number, what: string): void {
    const budget = this.#opts.budget;
    const free = Math.max(0, budget - this.usedBytes());
    if (bytes <= free) return;
    throw new EngineError(
      507,
      "insufficient_memory",
      `${what} needs ${formatBytes(bytes)}, ${formatBytes(free)} free of the ${formatBytes(budget)} budget; ` +
        "unload a model (DELETE /admin/models/NAME), load with a smaller context_size or parallel, or give the engine a larger --memory-budget",
      { extra: { needed_bytes: bytes, free_bytes: free, budget_bytes: budget } },
    );
  }

  /** Load `req.path` as `req.name`; loading the same name and path again returns the loaded model. */
  async load(req: LoadRequest): Promise<{ model: LoadedModel; created: boolean }> {
    if (!isAbsolute(req.path))
      throw new EngineError(400, "invalid_model_path", "path must be absolute", { param: "path" });
    const existing = this.#entries.get(req.name);
    if (existing) {
      if (existing.path !== req.path || existing.state === "unloading") {
        throw new EngineError(
          409,
          "conflict",
          existing.state === "unloading"
            ? `the model ${req.name} is being unloaded; retry the load when it is gone`
            : `the name ${req.name} is already loaded from ${existing.path}; unload it first (DELETE /admin/models/${req.name})`,
          { param: "name" },
        );
      }
      return { model: await existing.ready, created: false };
    }
    const entry: Entry = {
      name: req.name,
      path: req.path,
      state: "loading",
      reservedBytes: 0,
      abort: new AbortController(),
      ready: Promise.resolve() as unknown as Promise<LoadedModel>,
    };
    entry.ready = this.#load(entry, req).catch((err: unknown) => {
      if (this.#entries.get(entry.name) === entry) this.#entries.delete(entry.name);
      throw loadError(err, entry);
    });
    this.#entries.set(req.name, entry);
    return { model: await entry.ready, created: true };
  }

  async #load(entry: Entry, req: LoadRequest): Promise<LoadedModel> {
    const { llama, log } = this.#opts;
    const requested = performance.now();
    const identity = await checkGguf(req.path);
    const { fileInfo, insights } = await this.#headers.get(identity, async () => {
      // Without the load's abort signal: the header read also serves the next load of this file.
      const fileInfo = await readGgufFileInfo(req.path).catch((err: unknown) => {
        throw new EngineError(
          400,
          "invalid_model_file",
          `${req.path} is not a readable GGUF file: ${message(err)}`,
          {
            param: "path",
          },
        );
      });
      return { fileInfo, insights: await GgufInsights.from(fileInfo, llama) };
    });
    entry.abort.signal.throwIfAborted();
    if (!insights.isSupportedByLlamaCpp) {
      const arch = fileInfo.metadata?.general?.architecture ?? "unknown";
      throw new EngineError(
        400,
        "unsupported_model",
        `the builtin engine's llama.cpp does not support the architecture "${arch}" of ${req.path}; serve it with another engine`,
        { param: "path" },
      );
    }
    const contextSize =
      req.context_size ?? Math.min(insights.trainContextSize ?? DEFAULT_CONTEXT_SIZE, DEFAULT_CONTEXT_SIZE);
    const parallel = req.parallel ?? DEFAULT_PARALLEL;
    const estimate = await estimateLoad(llama, insights, {
      contextSize,
      parallel,
      gpuLayers: req.gpu_layers,
    });
    entry.abort.signal.throwIfAborted();
    this.reserve(
      estimate.totalBytes,
      `the model ${req.name} (context ${contextSize} × ${parallel} sequences)`,
    );
    entry.reservedBytes = estimate.totalBytes;
    const started = performance.now();
    const model = await LoadedModel.load(
      llama,
      { name: req.name, path: req.path, contextSize, parallel, gpuLayers: estimate.gpuLayers },
      {
        threads: this.#opts.threads,
        maxQueue: this.#opts.maxQueue,
        log,
        signal: entry.abort.signal,
        reserve: (bytes, what) => this.reserve(bytes, what),
      },
    );
    entry.model = model;
    entry.state = "ready";
    entry.reservedBytes = 0;
    log.info(
      {
        model: req.name,
        path: req.path,
        context_size: contextSize,
        parallel,
        gpu_layers: estimate.gpuLayers,
        memory_bytes: model.memoryBytes(),
        estimated_bytes: estimate.totalBytes,
        chat_template: model.chatWrapper.wrapperName,
        // Reading the GGUF's metadata and estimating its memory, before the load itself.
        prepare_ms: Math.round(started - requested),
        load_ms: Math.round(performance.now() - started),
      },
      "model loaded",
    );
    return model;
  }

  /** A model ready to serve; model_not_found (404), or 503 while it loads or unloads. */
  get(name: string): LoadedModel {
    const entry = this.#entries.get(name);
    if (!entry) throw modelNotFound(name);
    if (!entry.model || entry.state !== "ready") {
      throw new EngineError(503, "unavailable", `the model ${name} is ${entry.state}; retry shortly`, {
        headers: { "retry-after": "1" },
      });
    }
    return entry.model;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  async unload(name: string): Promise<void> {
    const entry = this.#entries.get(name);
    if (!entry) throw modelNotFound(name);
    if (!entry.unloaded) {
      if (entry.state === "loading")
        entry.abort.abort(new Error(`the model ${name} was unloaded while it loaded`));
      entry.state = "unloading";
      entry.unloaded = (async () => {
        const model = await entry.ready.catch(() => undefined);
        try {
          await model?.unload();
        } finally {
          if (this.#entries.get(name) === entry) this.#entries.delete(name);
        }
        this.#opts.log.info({ model: name }, "model unloaded");
      })();
    }
    await entry.unloaded;
  }

  async unloadAll(): Promise<void> {
    await Promise.allSettled([...this.#entries.keys()].map((name) => this.unload(name)));
  }

  list(): ModelView[] {
    return [...this.#entries.values()].map((e) => {
      const m = e.model;
      return {
        name: e.name,
        path: e.path,
        context_size: m ? m.spec.contextSize : null,
        memory_bytes: m ? m.memoryBytes() : e.reservedBytes,
        state: e.state,
        parallel: m ? m.spec.parallel : null,
        gpu_layers: m ? m.spec.gpuLayers : null,
        active: m?.active ?? 0,
        queued: m?.queued ?? 0,
        requests: m?.stats.requests ?? 0,
        tokens_generated: m?.stats.tokensGenerated ?? 0,
        cancelled: m?.stats.cancelled ?? 0,
        chat_template: m ? m.chatWrapper.wrapperName : null,
      };
    });
  }

  /** Names of the models ready to serve. */
  ready(): LoadedModel[] {
    const out: LoadedModel[] = [];
    for (const e of this.#entries.values()) if (e.model && e.state === "ready") out.push(e.model);
    return out;
  }
}

const GGUF_MAGIC = Buffer.from("GGUF", "latin1");

/** A clear answer for the two common mistakes: no such file, and a file that is not a GGUF. */
/** Checks that `path` is a GGUF file; returns its identity (device, inode, size, modification time). */
async function checkGguf(path: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new EngineError(404, "model_file_not_found", `no file at ${path}; pull the model first`, {
        param: "path",
      });
    throw new EngineError(400, "invalid_model_file", `cannot open ${path}: ${message(err)}`, {
      param: "path",
    });
  }
  try {
    const stat = await handle.stat({ bigint: true });
    if (!stat.isFile())
      throw new EngineError(400, "invalid_model_file", `${path} is not a file`, { param: "path" });
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    if (bytesRead < 4 || !head.equals(GGUF_MAGIC)) {
      throw new EngineError(
        400,
        "invalid_model_file",
        `${path} is not a GGUF file (it does not start with "GGUF"); the builtin engine serves GGUF models only`,
        { param: "path" },
      );
    }
    return `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${path}`;
  } finally {
    await handle.close();
  }
}

function loadError(err: unknown, entry: Entry): unknown {
  if (err instanceof EngineError) return err;
  if (entry.abort.signal.aborted)
    return new EngineError(
      409,
      "conflict",
      `the load of ${entry.name} was cancelled: it was unloaded meanwhile`,
    );
  if (err instanceof InsufficientMemoryError) {
    return new EngineError(
      507,
      "insufficient_memory",
      `this machine does not have the free memory to load ${entry.name} (${message(err)}); unload a model or load with a smaller context_size or parallel`,
    );
  }
  return new EngineError(
    400,
    "model_load_failed",
    `llama.cpp could not load ${entry.path}: ${message(err)}`,
    {
      param: "path",
    },
  );
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
