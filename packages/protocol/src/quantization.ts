/*
 * llama.cpp's quantisation types, as `--quantize` names them on deploy and pull: the gateway refuses an
 * unknown one before placing anything, the agent's converter refuses it too, and placement sizes a
 * replica by the type it will be converted to.
 */

/** The types llama-quantize at the engine's llama.cpp release accepts (tools/quantize/quantize.cpp, QUANT_OPTIONS). */
// biome-ignore format: one table
export const QUANTIZATION_TYPES = [
  "Q1_0", "Q2_0", "Q4_0", "Q4_1", "MXFP4_MOE", "Q5_0", "Q5_1", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M",
  "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0", "Q2_K", "Q2_K_S", "IQ3_XXS", "IQ3_S", "IQ3_M", "Q3_K", "IQ3_XS",
  "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_NL", "IQ4_XS", "Q4_K", "Q4_K_S", "Q4_K_M", "Q5_K", "Q5_K_S",
  "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16", "F32",
] as const;
export type QuantizationType = (typeof QUANTIZATION_TYPES)[number];

/** The tool refuses these without an importance matrix, which conversions do not compute yet. */
const NEEDS_IMATRIX = new Set<string>(["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "Q2_K_S"]);

/** Average bits per weight of each GGUF type (llama.cpp's figures), for sizes before the bytes exist. */
export const BITS_PER_WEIGHT: Record<string, number> = {
  F32: 32,
  F16: 16,
  BF16: 16,
  Q8_0: 8.5,
  Q6_K: 6.56,
  Q5_1: 6,
  Q5_0: 5.5,
  Q5_K: 5.7,
  Q5_K_M: 5.7,
  Q5_K_S: 5.5,
  Q4_1: 5,
  Q4_0: 4.5,
  Q4_K: 4.85,
  Q4_K_M: 4.85,
  Q4_K_S: 4.6,
  IQ4_NL: 4.5,
  IQ4_XS: 4.25,
  Q3_K: 3.9,
  Q3_K_L: 4.3,
  Q3_K_M: 3.9,
  Q3_K_S: 3.5,
  IQ3_M: 3.7,
  IQ3_S: 3.44,
  IQ3_XS: 3.3,
  IQ3_XXS: 3.06,
  Q2_K: 3.35,
  Q2_K_S: 2.9,
  IQ2_M: 2.7,
  IQ2_S: 2.5,
  IQ2_XS: 2.31,
  IQ2_XXS: 2.06,
  IQ1_M: 1.75,
  IQ1_S: 1.56,
  TQ1_0: 1.69,
  TQ2_0: 2.06,
  MXFP4_MOE: 4.25,
};

/** Either the type in its one spelling ("q8_0" is Q8_0), or the sentence that says what to use instead. */
export function parseQuantization(
  type: string,
  model: string,
): { ok: true; type: QuantizationType } | { ok: false; message: string } {
  const upper = type.trim().toUpperCase();
  const known = QUANTIZATION_TYPES.find((t) => t === upper);
  if (!known)
    return {
      ok: false,
      message: `cannot quantize ${model} to ${JSON.stringify(type)}: llama.cpp has no such quantization type; use one of Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16 (or another of ${QUANTIZATION_TYPES.join(", ")})`,
    };
  if (NEEDS_IMATRIX.has(known))
    return {
      ok: false,
      message: `cannot quantize ${model} to ${known}: that type needs an importance matrix, which conversions do not make yet; use Q2_K, Q3_K_M or a larger type`,
    };
  return { ok: true, type: known };
}

/** What a stored GGUF says of its size, as an agent reports it after a pull. */
export interface WeightFacts {
  size: number | null;
  parameter_count: number | null;
  quantization: string | null;
}

/**
 * Bytes of the weights once converted to `target`: parameter count × bits per weight, or, with the
 * count unknown, the source's size scaled by the two types' bits; null when neither is known.
 */
export function quantizedBytes(source: WeightFacts, target: string): number | null {
  const bits = BITS_PER_WEIGHT[target.toUpperCase()];
  if (bits === undefined) return null;
  if (source.parameter_count !== null && source.parameter_count > 0)
    return Math.ceil((source.parameter_count * bits) / 8);
  const from = source.quantization === null ? undefined : BITS_PER_WEIGHT[source.quantization.toUpperCase()];
  if (source.size === null || from === undefined) return null;
  return Math.ceil((source.size * bits) / from);
}
