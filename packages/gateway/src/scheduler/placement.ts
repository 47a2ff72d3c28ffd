import type { GpuRequirement, MachineView } from "@beta9/protocol";

/** EU member states (ISO 3166 alpha-2), for deployments pinned to the EU. */
export const EU_COUNTRIES = new Set([
  "AT",
  "BE",
  "BG",
  "HR",
  "CY",
  "CZ",
  "DK",
  "EE",
  "FI",
  "FR",
  "DE",
  "GR",
  "HU",
  "IE",
  "IT",
  "LV",
  "LT",
  "LU",
  "MT",
  "NL",
  "PL",
  "PT",
  "RO",
  "SK",
  "SI",
  "ES",
  "SE",
]);

export interface PlacementNeeds {
  model: string;
  pool: string;
  gpu: GpuRequirement;
  minVramBytes: number | null;
  countries: readonly string[];
  region: string | null;
  /** Whether the gateway placed this deployment's replica on the machine (absent: any that serves it counts). */
  placedOn?: ((machineId: string) => boolean) | undefined;
}

export type Placement = { ok: true; machines: MachineView[] } | { ok: false; reason: string };

/** The constraints a replica must keep satisfying while it serves (VRAM is checked only to place it). */
export type StandingNeeds = Pick<PlacementNeeds, "pool" | "gpu" | "countries" | "region">;
type Where = Pick<MachineView, "pool" | "country" | "hardware">;

const gpuFits = (gpu: GpuRequirement, m: Where) =>
  gpu === "any" ||
  (gpu === "none" ? m.hardware.gpus.length === 0 : m.hardware.gpus.some((g) => g.vendor === gpu));

const placeFits = (needs: StandingNeeds, m: Where) =>
  (needs.countries.length === 0 && !needs.region) ||
  (m.country !== null &&
    (needs.countries.length === 0 || needs.countries.includes(m.country)) &&
    (needs.region !== "eu" || EU_COUNTRIES.has(m.country)));

/** Whether a machine satisfies a deployment's pool, GPU and country or region now (checked per request). */
export function fitsNow(needs: StandingNeeds, m: Where): boolean {
  return m.pool === needs.pool && gpuFits(needs.gpu, m) && placeFits(needs, m);
}

const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;

/**
 * The machines a new replica may go to, best first: those that pass every constraint (pool, GPU
 * vendor, VRAM, country or region; cordoned, draining and unhealthy ones never), do not already
 * serve the model, and are least loaded. When none qualifies, the reason names the constraint that
 * emptied the list and the best machine it turned away.
 */
export function placeReplica(needs: PlacementNeeds, machines: readonly MachineView[]): Placement {
  // A fork agent serves what its owner runs in Ollama: the gateway cannot load a replica there.
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
  const inPool = candidates.filter((m) => m.pool === needs.pool);
  let reason = step(inPool, () => `no ready machine in pool ${needs.pool}`);
  if (reason) return { ok: false, reason };

  if (needs.gpu !== "any") {
    const want = needs.gpu;
    const withGpu = candidates.filter((m) => gpuFits(want, m));
    reason = step(withGpu, () =>
      want === "none"
        ? `every ready machine in pool ${needs.pool} has a GPU, and this deployment asks for none`
        : `no ready machine in pool ${needs.pool} has a ${want} GPU`,
    );
    if (reason) return { ok: false, reason };
  }

  if (needs.minVramBytes) {
    const need = needs.minVramBytes;
    const vram = (m: MachineView) => m.inference?.vram_free_bytes ?? freeUnified(m);
    const fits = candidates.filter((m) => vram(m) >= need);
    reason = step(fits, () => {
      const best = [...candidates].sort((a, b) => vram(b) - vram(a))[0]!;
      return `no machine in pool ${needs.pool} has ${gb(need)} free VRAM; most free is ${gb(vram(best))} on ${best.name}`;
    });
    if (reason) return { ok: false, reason };
  }

  if (needs.countries.length > 0 || needs.region) {
    const allowed = (m: MachineView) => placeFits(needs, m);
    const where = [
      needs.countries.length > 0 ? needs.countries.join(",") : "",
      needs.region === "eu" ? "the EU" : "",
    ]
      .filter(Boolean)
      .join(" and ");
    reason = step(
      candidates.filter(allowed),
      () =>
        `no ready machine in pool ${needs.pool} is in ${where} (machines declare their country with b9agent init --country)`,
    );
    if (reason) return { ok: false, reason };
  }

  // A machine that serves the name without the gateway having placed it there (from before a restart
  // of the record, or by its own account) may still take the replica: placing it there checks it.
  const fresh = candidates.filter(
    (m) =>
      !(
        (needs.placedOn?.(m.id) ?? true) &&
        m.inference?.models.some((x) => x.name === needs.model && x.state !== "error")
      ),
  );
  reason = step(fresh, () => `every machine that fits already serves ${needs.model}`);
  if (reason) return { ok: false, reason };

  const load = (m: MachineView) => m.inference?.models.length ?? 0;
  const free = (m: MachineView) => m.inference?.vram_free_bytes ?? m.inference?.memory_free_bytes ?? 0;
  return {
    ok: true,
    machines: [...candidates].sort(
      (a, b) => load(a) - load(b) || free(b) - free(a) || a.id.localeCompare(b.id),
    ),
  };
}

/** Machines whose GPU shares the RAM (Apple Silicon) have as much "VRAM" as free memory. */
function freeUnified(m: MachineView): number {
  return m.hardware.gpus.some((g) => g.unified_memory) ? (m.inference?.memory_free_bytes ?? 0) : 0;
}
