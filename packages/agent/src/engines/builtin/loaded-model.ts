import type { Logger } from "@beta9/http/logger";
import {
  type ChatWrapper,
  type GgufInsights,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaEmbeddingContext,
  type LlamaModel,
  resolveChatWrapper,
} from "node-llama-cpp";
import { EngineError } from "./errors.ts";
import { estimateEmbeddingContext } from "./memory.ts";
import { QueueClosedError, QueueFullError, SlotQueue } from "./slot-queue.ts";

export interface ModelSpec {
  name: string;
  path: string;
  contextSize: number;
  parallel: number;
  gpuLayers: number;
}

export interface LoadOptions {
  threads: number;
  maxQueue: number;
  log: Logger;
  signal: AbortSignal;
  /** Throws when `bytes` more would not fit the engine's memory budget. */
  reserve: (bytes: number, what: string) => void;
}

export interface ModelStats {
  requests: number;
  tokensGenerated: number;
  cancelled: number;
}

/**
 * One GGUF in memory: its weights, one context with `parallel` sequences (one request generates on
 * each at a time; llama.cpp batches them together), and, made on first use, an embedding context.
 */
export class LoadedModel {
  readonly spec: ModelSpec;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly chatWrapper: ChatWrapper;
  readonly insights: GgufInsights;
  readonly stats: ModelStats = { requests: 0, tokensGenerated: 0, cancelled: 0 };
  readonly loadedAt = Date.now();
  readonly #sequences: SlotQueue<LlamaContextSequence>;
  readonly #opts: LoadOptions;
  /** Aborted on unload: every generation on this model stops. */
  readonly #stopping = new AbortController();
  readonly #running = new Set<Promise<unknown>>();
  #embedding: Promise<{ ctx: LlamaEmbeddingContext; queue: SlotQueue<LlamaEmbeddingContext> }> | undefined;
  #embeddingBytes = 0;
  #pendingBytes = 0;
  #unloading = false;

  private constructor(spec: ModelSpec, model: LlamaModel, context: LlamaContext, opts: LoadOptions) {
    this.spec = spec;
    this.model = model;
    this.context = context;
    this.insights = model.fileInsights;
    this.#opts = opts;
    // The model's own template (its Jinja chat template, or the specialized wrapper equivalent to it).
    this.chatWrapper = resolveChatWrapper(model);
    const sequences: LlamaContextSequence[] = [];
    for (let i = 0; i < spec.parallel; i++) sequences.push(context.getSequence());
    this.#sequences = new SlotQueue(sequences, opts.maxQueue);
  }

  static async load(llama: Llama, spec: ModelSpec, opts: LoadOptions): Promise<LoadedModel> {
    const model = await llama.loadModel({
      modelPath: spec.path,
      gpuLayers: spec.gpuLayers,
      loadSignal: opts.signal,
    });
    try {
      const context = await model.createContext({
        contextSize: spec.contextSize,
        sequences: spec.parallel,
        threads: opts.threads,
        // The context the caller asked for, or a clear refusal: never a silently smaller one.
        failedCreationRemedy: false,
        createSignal: opts.signal,
      });
      return new LoadedModel(spec, model, context, opts);
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  get name(): string {
    return this.spec.name;
  }
  get state(): "ready" | "unloading" {
    return this.#unloading ? "unloading" : "ready";
  }
  get active(): number {
    return this.#sequences.active;
  }
  get queued(): number {
    return this.#sequences.waiting;
  }

  /** Bytes held now: weights, KV caches, and anything being allocated. */
  memoryBytes(): number {
    const m = this.model.memoryUsage;
    const c = this.context.memoryUsage;
    return m.ram + m.vram + c.ram + c.vram + this.#embeddingBytes + this.#pendingBytes;
  }

  /**
   * Run `fn` on a free sequence, waiting in line for one. The signal it gets aborts when the caller's
   * does or when the model is unloaded.
   */
  async withSequence<R>(
    signal: AbortSignal,
    fn: (sequence: LlamaContextSequence, signal: AbortSignal) => Promise<R>,
  ): Promise<R> {
    const lease = await this.#acquire(this.#sequences, signal);
    this.stats.requests++;
    const run = fn(lease.item, AbortSignal.any([signal, this.#stopping.signal]));
    this.#running.add(run);
    try {
      return await run;
    } catch (err) {
      if (this.#stopping.signal.aborted && !signal.aborted) throw unloadingError(this.name);
      throw err;
    } finally {
      this.#running.delete(run);
      lease.release();
    }
  }

  /** Embeddings run one input at a time on their own context, made (and budgeted) on first use. */
  async embed(inputs: readonly string[], signal: AbortSignal): Promise<number[][]> {
    const { queue } = await this.#embeddingContext();
    const lease = await this.#acquire(queue, signal);
    const run = (async () => {
      const out: number[][] = [];
      for (const input of inputs) {
        if (signal.aborted || this.#stopping.signal.aborted)
          throw signal.reason ?? this.#stopping.signal.reason;
        const e = await lease.item.getEmbeddingFor(input);
        out.push([...e.vector]);
      }
      return out;
    })();
    this.#running.add(run);
    try {
      return await run;
    } finally {
      this.#running.delete(run);
      lease.release();
    }
  }

  /** Tokens an input takes in the embedding context (with the BOS/EOS it adds). */
  async embeddingInputLength(input: string): Promise<number> {
    const { ctx } = await this.#embeddingContext();
    return ctx.calculateInputLength(input);
  }

  #embeddingContext(): Promise<{ ctx: LlamaEmbeddingContext; queue: SlotQueue<LlamaEmbeddingContext> }> {
    if (this.#unloading) return Promise.reject(unloadingError(this.name));
    if (!this.#embedding) {
      const made = (async () => {
        const need = await estimateEmbeddingContext(
          this.insights,
          this.spec.contextSize,
          embeddingBatchSize(this.spec.contextSize),
          this.model.gpuLayers,
        );
        this.#opts.reserve(need, `an embedding context for ${this.name}`);
        this.#pendingBytes += need;
        try {
          const ctx = await this.model.createEmbeddingContext({
            contextSize: this.spec.contextSize,
            batchSize: embeddingBatchSize(this.spec.contextSize),
            threads: this.#opts.threads,
          });
          // node-llama-cpp does not expose the embedding context's usage; its estimate is close.
          this.#embeddingBytes = need;
          return { ctx, queue: new SlotQueue([ctx], this.#opts.maxQueue) };
        } finally {
          this.#pendingBytes -= need;
        }
      })();
      this.#embedding = made;
      // A failed attempt (no memory, say) may be retried by the next request.
      made.catch(() => {
        if (this.#embedding === made) this.#embedding = undefined;
      });
    }
    return this.#embedding;
  }

  async #acquire<T>(queue: SlotQueue<T>, signal: AbortSignal) {
    try {
      return await queue.acquire(signal);
    } catch (err) {
      if (err instanceof QueueFullError) {
        throw new EngineError(
          503,
          "unavailable",
          `the model ${this.name} is busy: ${err.slots} requests are generating and ${err.waiting} are waiting; retry shortly or load it with a larger parallel`,
          { headers: { "retry-after": "1" } },
        );
      }
      if (err instanceof QueueClosedError) throw unloadingError(this.name);
      throw err;
    }
  }

  /** Stop every generation, refuse new ones, and free the memory. */
  async unload(): Promise<void> {
    if (this.#unloading) return;
    this.#unloading = true;
    this.#sequences.close(`the model ${this.name} is being unloaded`);
    this.#stopping.abort(new Error(`the model ${this.name} is being unloaded`));
    await Promise.allSettled([...this.#running]);
    const embedding = await this.#embedding?.catch(() => undefined);
    embedding?.queue.close(`the model ${this.name} is being unloaded`);
    await embedding?.ctx.dispose();
    await this.context.dispose();
    await this.model.dispose();
    this.#opts.log.debug({ model: this.name }, "model unloaded");
  }
}

const unloadingError = (name: string) =>
  new EngineError(503, "unavailable", `the model ${name} is being unloaded; load it again to use it`, {
    headers: { "retry-after": "1" },
  });

/**
 * node-llama-cpp's default batch (at most 512 tokens): causal models embed longer inputs over several
 * batches, and a batch as large as the context would cost its logits buffer (vocabulary × batch floats,
 * 400 MiB for SmolLM2 at 2048). Encoder models (BERT) need the whole input in one batch, but their
 * context is 512 anyway.
 */
export const embeddingBatchSize = (contextSize: number): number => Math.min(contextSize, 512);
