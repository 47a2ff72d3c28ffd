import { freemem } from "node:os";
import type { Hardware, Usage } from "@beta9/protocol";

/**
 * Memory a new model can use: VRAM on machines with discrete GPUs, RAM otherwise (CPU inference, or
 * Apple's unified memory). Returns null where the number is not known.
 */
export function freeMemory(hardware: Hardware, usage: Usage | null): { ram: number; vram: number | null } {
  const ram = freemem();
  const discrete = hardware.gpus.filter((g) => !g.unified_memory && g.memory_total_bytes > 0);
  if (discrete.length === 0) return { ram, vram: null };
  let vram = 0;
  for (const g of discrete) {
    const used = usage?.gpus.find((u) => u.index === g.index)?.memory_used_bytes ?? g.memory_used_bytes ?? 0;
    vram += Math.max(0, g.memory_total_bytes - used);
  }
  return { ram, vram };
}
