import { keepHeapSmall as keepHeapNear } from "@beta9/http/heap";

/**
 * The young generation Node 20 had (16 MB semispaces). Node 24's V8 sizes it from the heap limit, up to
 * 64 MB semispaces on a machine with a few GB: 128 MB of RSS that a gateway holding thousands of idle
 * agent channels never needs (bench/heartbeats).
 */
export const YOUNG_GENERATION_CAP = 32 * 1024 * 1024;

/** Keeps the gateway's heap near what it uses (the settings the agent and its engine share). */
export function keepHeapSmall(): void {
  keepHeapNear(YOUNG_GENERATION_CAP);
}
