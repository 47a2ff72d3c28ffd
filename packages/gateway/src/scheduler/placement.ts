import type { GpuRequirement, MachineView } from "@beta9/protocol";
import type { CarbonOf } from "../placement/carbon-rank.ts";
import { type Constraints, type MachinePlace, meetsConstraints } from "../placement/constraints.ts";
import { type Placement, place } from "../placement/place.ts";

/*
 * Placement of a model's replica: one user of the gateway's placement (placement/), which is about
 * machines and what work needs, not about models. Jobs will be the second user, with their own
 * resources (memory, CPU) and no model to exclude.
 */

export interface PlacementNeeds {
  model: string;
  pool: string;
  gpu: GpuRequirement;
  minVramBytes: number | null;
  countries: readonly string[];
  region: string | null;
  /** Whether the gateway placed this deployment's replica on the machine (absent: any that serves it counts). */
  placedOn?: ((machineId: string) => boolean) | undefined;
  /** The model's weights as it will be served (converted size for --quantize), when the gateway knows them. */
  weights?: { bytes: number; what: string } | null | undefined;
  /** Set for a deployment that prefers low carbon: what the gateway knows of each machine's carbon. */
  lowCarbon?: CarbonOf | undefined;
}

/** The constraints a replica must keep satisfying while it serves (VRAM is checked only to place it). */
export type StandingNeeds = Constraints;

/** Whether a machine satisfies a deployment's pool, GPU and country or region now (checked per request). */
export function fitsNow(needs: StandingNeeds, m: MachinePlace): boolean {
  return meetsConstraints(needs, m);
}

/**
 * The machines a new replica may go to, best first (placement/place.ts): they pass the deployment's
 * constraints and VRAM, and do not serve the model yet.
 */
export function placeReplica(needs: PlacementNeeds, machines: readonly MachineView[]): Placement {
  return place(
    {
      constraints: needs,
      resources: { vramBytes: needs.minVramBytes, memoryBytes: null, weights: needs.weights },
      askedBy: "this deployment",
      // A machine that serves the name without the gateway having placed it there (from before a
      // restart of the record, or by its own account) may still take the replica: placing it there checks it.
      exclude: {
        excludes: (m) =>
          (needs.placedOn?.(m.id) ?? true) &&
          (m.inference?.models.some((x) => x.name === needs.model && x.state !== "error") ?? false),
        reason: () => `every machine that fits already serves ${needs.model}`,
      },
      lowCarbon: needs.lowCarbon ? { carbonOf: needs.lowCarbon, unit: "tokens" } : undefined,
    },
    machines,
  );
}
