import type { GgufFacts } from "./gguf.ts";
import { ModelError } from "./model-error.ts";

/*
 * How much memory a GGUF model needs to serve at a given context size, so the agent can refuse a
 * load that would not fit with numbers instead of letting the engine die halfway through.
 */

export interface MemoryEstimate {
  /** The weights: the file's size (quantized weights are loaded as they are stored). */
  weights_bytes: number;
  /** Keys and values for every layer and every token of the context. */
  kv_cache_bytes: number;
  /** Compute buffers, scratch and runtime: a fixed floor plus a share of the rest. */
  overhead_bytes: number;
  total_bytes: number;
  context_size: number;
}

export interface EstimateOptions {
  contextSize: number;
  fileBytes: number;
  /** 2 for an f16 KV cache (the engines' default), 1 for q8_0. */
  kvBytesPerElement?: number;
}

/** Compute graph, logits and runtime need some room even for a tiny model. */
export const OVERHEAD_FLOOR_BYTES = 128 * 1024 * 1024;
/** …plus a share that grows with the model: a rough allowance, not a measurement. */
export const OVERHEAD_SHARE = 0.05;

export type MemoryFacts = Pick<
  GgufFacts,
  "block_count" | "embedding_length" | "head_count" | "head_count_kv"
>;

export function estimateMemory(facts: MemoryFacts, options: EstimateOptions): MemoryEstimate {
  const { contextSize, fileBytes, kvBytesPerElement = 2 } = options;
  if (!Number.isInteger(contextSize) || contextSize <= 0) {
    throw new RangeError(`contextSize must be a positive integer, not ${contextSize}`);
  }
  const layers = facts.block_count ?? 0;
  const embedding = facts.embedding_length ?? 0;
  const heads = facts.head_count ?? 0;
  // Without GQA every head has its own keys and values.
  const kvHeads = facts.head_count_kv ?? heads;
  // K and V, per layer, per token: one head's width times the number of KV heads.
  const kvWidth = heads > 0 ? (embedding / heads) * kvHeads : 0;
  const kv_cache_bytes = Math.ceil(2 * layers * contextSize * kvWidth * kvBytesPerElement);
  const weights_bytes = fileBytes;
  const overhead_bytes = Math.ceil(OVERHEAD_FLOOR_BYTES + OVERHEAD_SHARE * (weights_bytes + kv_cache_bytes));
  return {
    weights_bytes,
    kv_cache_bytes,
    overhead_bytes,
    total_bytes: weights_bytes + kv_cache_bytes + overhead_bytes,
    context_size: contextSize,
  };
}

const GiB = 1024 ** 3;

/** Bytes as GiB for people: one decimal from 1 GiB up, two below. */
export function formatGiB(bytes: number): string {
  const gib = bytes / GiB;
  return gib >= 1 ? gib.toFixed(1) : gib.toFixed(2);
}

/** Throws "insufficient_memory" with the numbers when the estimate exceeds the free memory. */
export function checkFits(estimate: MemoryEstimate, freeBytes: number): void {
  if (estimate.total_bytes <= freeBytes) return;
  throw new ModelError(
    "insufficient_memory",
    `needs ${formatGiB(estimate.total_bytes)} GiB (${formatGiB(estimate.weights_bytes)} weights + ` +
      `${formatGiB(estimate.kv_cache_bytes)} KV cache at ${estimate.context_size} tokens + ` +
      `${formatGiB(estimate.overhead_bytes)} overhead); ${formatGiB(Math.max(0, freeBytes))} GiB free`,
  );
}
