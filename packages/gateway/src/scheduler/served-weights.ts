import { quantizedBytes, type StoredModelView } from "@beta9/protocol";

/**
 * The weights a replica of a converted deployment loads, from what a machine said of the model when
 * it pulled (and converted) it: placement measures machines against these, not the source's size.
 * Null for a model served as it was fetched (the agent checks its own memory) or when nothing is known.
 */
export function servedWeights(
  dep: { name: string; quantize: string | null },
  stored: StoredModelView,
): { bytes: number; what: string } | null {
  if (dep.quantize === null) {
    // A safetensors repository converted on the machine (to F16): its GGUF is what loads.
    if (!stored.converted_from || stored.size === null) return null;
    return { bytes: stored.size, what: `${dep.name} as converted (GGUF ${stored.converted_from.target})` };
  }
  const bytes =
    stored.size !== null && stored.quantization?.toUpperCase() === dep.quantize
      ? stored.size
      : quantizedBytes(stored, dep.quantize);
  return bytes === null ? null : { bytes, what: `${dep.name} at ${dep.quantize}` };
}
