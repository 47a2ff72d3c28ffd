import type { MachineView } from "@beta9/protocol";
import { type CarbonOf, type CarbonUnit, rankLowCarbon } from "./carbon-rank.ts";
import { type Constraints, describeLocation, gpuFits, locationFits } from "./constraints.ts";

/*
 * Placement for any work the gateway puts on a machine: models' replicas today (scheduler/placement.ts)
 * and jobs next. Work says what it needs — constraints on where, resources it takes — and gets the
 * machines that can take it, best first, or a sentence naming the constraint that ruled them all out.
 */

/**
 * What the work takes on the machine. Measured against what the machine reports free, which is
 * after what its current models (and, later, jobs) already use.
 */
export interface Resources {
  /** GPU memory, on one machine; on unified memory (Apple Silicon) its free RAM counts. */
  vramBytes: number | null;
  /** System memory. */
  memoryBytes: number | null;
  /**
   * A model's weights, where its engine loads them: GPU memory on a machine that reports it, else
   * RAM (as the agent checks before it starts a model); `what` names them in a reason.
   */
  weights?: { bytes: number; what: string } | null | undefined;
}

/** Machines that satisfy everything else but may not take this work, and why, for the reason. */
export interface Exclusion {
  excludes: (m: MachineView) => boolean;
  reason: () => string;
}

export interface Needs {
  constraints: Constraints;
  resources: Resources;
  /** Who asks, in reasons: "this deployment", "this job". */
  askedBy: string;
  exclude?: Exclusion | undefined;
  /** Rank what fits by expected carbon instead of load (`prefer: "low-carbon"`). */
  lowCarbon?: { carbonOf: CarbonOf; unit: CarbonUnit } | undefined;
}

/** When it succeeds: the machines best first, and why the first one is first, in a sentence. */
export type Placement = { ok: true; machines: MachineView[]; why: string } | { ok: false; reason: string };

/** Bytes as a person reads them in a reason: "24.0 GB". */
export const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;

/** Machines whose GPU shares the RAM (Apple Silicon) have as much "VRAM" as free memory. */
function freeUnified(m: MachineView): number {
  return m.hardware.gpus.some((g) => g.unified_memory) ? (m.inference?.memory_free_bytes ?? 0) : 0;
}

export const freeVram = (m: MachineView): number => m.inference?.vram_free_bytes ?? freeUnified(m);
export const freeMemory = (m: MachineView): number => m.inference?.memory_free_bytes ?? 0;
/** Where a model's weights go: free GPU memory when the machine reports any, else free RAM. */
export const freeForWeights = (m: MachineView): number =>
  m.inference?.vram_free_bytes ?? m.inference?.memory_free_bytes ?? 0;

/**
 * The machines the work may go to, best first: those that pass every constraint (pool, GPU vendor,
 * free VRAM and memory, country or region; cordoned, draining and unhealthy ones never), are not
 * excluded, and are least loaded. When none qualifies, the reason names the constraint that emptied
 * the list and the best machine it turned away.
 */
export function place(needs: Needs, machines: readonly MachineView[]): Placement {
  const { constraints: c, resources: r } = needs;
  // A fork agent serves what its owner runs in Ollama: the gateway cannot put work there.
  let candidates = machines.filter(
    (m) => (m.status === "READY" || m.status === "BUSY") && m.connection !== "keepalive",
  );
  if (candidates.length === 0) {
    return {
      ok: false,
      reason:
        machines.length === 0
          ? "no machine has joined yet"
          : "no machine is READY (all are unhealthy, offline, cordoned or draining)",
    };
  }
  const step = (next: MachineView[], why: () => string): string | null => {
    if (next.length === 0) return why();
    candidates = next;
    return null;
  };
  const inPool = candidates.filter((m) => m.pool === c.pool);
  let reason = step(inPool, () => `no ready machine in pool ${c.pool}`);
  if (reason) return { ok: false, reason };

  if (c.gpu !== "any") {
    const want = c.gpu;
    const withGpu = candidates.filter((m) => gpuFits(want, m));
    reason = step(withGpu, () =>
      want === "none"
        ? `every ready machine in pool ${c.pool} has a GPU, and ${needs.askedBy} asks for none`
        : `no ready machine in pool ${c.pool} has a ${want} GPU`,
    );
    if (reason) return { ok: false, reason };
  }

  const resources: [number | null, (m: MachineView) => number, string][] = [
    [r.vramBytes, freeVram, "VRAM"],
    [r.memoryBytes, freeMemory, "memory"],
  ];
  for (const [need, free, what] of resources) {
    if (!need) continue;
    reason = step(
      candidates.filter((m) => free(m) >= need),
      () => {
        const best = [...candidates].sort((a, b) => free(b) - free(a))[0]!;
        return `no machine in pool ${c.pool} has ${gb(need)} free ${what}; most free is ${gb(free(best))} on ${best.name}`;
      },
    );
    if (reason) return { ok: false, reason };
  }

  const weights = r.weights;
  if (weights) {
    reason = step(
      candidates.filter((m) => freeForWeights(m) >= weights.bytes),
      () => {
        const best = [...candidates].sort((a, b) => freeForWeights(b) - freeForWeights(a))[0]!;
        return `no machine in pool ${c.pool} has ${gb(weights.bytes)} free for ${weights.what}; most free is ${gb(freeForWeights(best))} on ${best.name}`;
      },
    );
    if (reason) return { ok: false, reason };
  }

  if (c.countries.length > 0 || c.region) {
    reason = step(
      candidates.filter((m) => locationFits(c, m)),
      () =>
        `no ready machine in pool ${c.pool} is in ${describeLocation(c)} (the operator sets a machine's country: b9 token create --country, b9 machine set ID --country)`,
    );
    if (reason) return { ok: false, reason };
  }

  const exclude = needs.exclude;
  if (exclude !== undefined) {
    reason = step(
      candidates.filter((m) => !exclude.excludes(m)),
      exclude.reason,
    );
    if (reason) return { ok: false, reason };
  }

  const load = (m: MachineView) => m.inference?.models.length ?? 0;
  const free = freeForWeights;
  const byLoad = [...candidates].sort(
    (a, b) => load(a) - load(b) || free(b) - free(a) || a.id.localeCompare(b.id),
  );
  if (needs.lowCarbon) {
    const ranked = rankLowCarbon(byLoad, needs.lowCarbon.carbonOf, needs.lowCarbon.unit);
    return { ok: true, machines: ranked.machines, why: ranked.why };
  }
  const first = byLoad[0]!;
  return {
    ok: true,
    machines: byLoad,
    why:
      byLoad.length === 1
        ? `${first.name} is the only machine that fits`
        : `least loaded of ${byLoad.length} that fit: ${first.name} serves ${load(first)} models with ${gb(free(first))} free`,
  };
}
