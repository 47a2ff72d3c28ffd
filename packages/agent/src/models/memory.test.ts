import { describe, expect, it } from "vitest";
import { checkFits, estimateMemory, formatGiB, OVERHEAD_FLOOR_BYTES } from "./memory.ts";
import { ModelError } from "./model-error.ts";

const GiB = 1024 ** 3;
const smollm2 = { block_count: 30, embedding_length: 576, head_count: 9, head_count_kv: 3 };
// A Llama-3-8B-like shape: 32 layers, 4096 wide, 32 heads, 8 KV heads.
const llama8b = { block_count: 32, embedding_length: 4096, head_count: 32, head_count_kv: 8 };

describe("estimateMemory", () => {
  it("sizes SmolLM2-135M's KV cache at 8192 tokens: 2 × 30 layers × 8192 × (64 × 3) × 2 bytes", () => {
    const e = estimateMemory(smollm2, { contextSize: 8192, fileBytes: 98_362_432 });
    expect(e.kv_cache_bytes).toBe(2 * 30 * 8192 * 192 * 2);
    expect(e.kv_cache_bytes).toBe(188_743_680);
    expect(e.weights_bytes).toBe(98_362_432);
    expect(e.overhead_bytes).toBeGreaterThanOrEqual(OVERHEAD_FLOOR_BYTES);
    expect(e.total_bytes).toBe(e.weights_bytes + e.kv_cache_bytes + e.overhead_bytes);
    expect(e.context_size).toBe(8192);
  });

  it("grows linearly with the context and halves with a q8_0 cache", () => {
    const at4k = estimateMemory(llama8b, { contextSize: 4096, fileBytes: 0 });
    const at8k = estimateMemory(llama8b, { contextSize: 8192, fileBytes: 0 });
    expect(at8k.kv_cache_bytes).toBe(2 * at4k.kv_cache_bytes);
    expect(at8k.kv_cache_bytes).toBe(GiB);
    const q8 = estimateMemory(llama8b, { contextSize: 8192, fileBytes: 0, kvBytesPerElement: 1 });
    expect(q8.kv_cache_bytes).toBe(GiB / 2);
  });

  it("treats a model without head_count_kv as one KV head per attention head", () => {
    const e = estimateMemory({ ...llama8b, head_count_kv: null }, { contextSize: 1024, fileBytes: 0 });
    expect(e.kv_cache_bytes).toBe(2 * 32 * 1024 * 4096 * 2);
  });

  it("refuses a context size that is not a positive integer", () => {
    expect(() => estimateMemory(smollm2, { contextSize: 0, fileBytes: 1 })).toThrow(RangeError);
  });
});

describe("checkFits", () => {
  it("passes when the model fits", () => {
    const e = estimateMemory(smollm2, { contextSize: 8192, fileBytes: 98_362_432 });
    expect(() => checkFits(e, 8 * GiB)).not.toThrow();
  });

  it("refuses with the numbers in GiB when it does not", () => {
    const e = estimateMemory(llama8b, { contextSize: 8192, fileBytes: 4.1 * GiB });
    let err: unknown;
    try {
      checkFits(e, 3.9 * GiB);
    } catch (caught) {
      err = caught;
    }
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe("insufficient_memory");
    expect((err as ModelError).message).toBe(
      `needs ${formatGiB(e.total_bytes)} GiB (4.1 weights + 1.0 KV cache at 8192 tokens + ${formatGiB(e.overhead_bytes)} overhead); 3.9 GiB free`,
    );
    expect((err as ModelError).message).toMatch(
      /^needs 5\.\d GiB \(4\.1 weights \+ 1\.0 KV cache at 8192 tokens/,
    );
  });

  it("shows small models with two decimals", () => {
    const e = estimateMemory(smollm2, { contextSize: 8192, fileBytes: 98_362_432 });
    expect(() => checkFits(e, 0.25 * GiB)).toThrow(
      /^needs 0\.\d\d GiB \(0\.09 weights \+ 0\.18 KV cache at 8192 tokens \+ 0\.\d\d overhead\); 0\.25 GiB free$/,
    );
  });
});
