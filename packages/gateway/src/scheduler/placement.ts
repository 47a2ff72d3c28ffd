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
}

export type Placement = { ok: true; machines: MachineView[] } | { ok: false; reason: string };

const gb = (n: number) => `${(n / 1e9).toFixed(1)} GB`;

/**
 * The machines a new replica may go to, best first: those that pass every constraint (pool, GPU
 * vendor, VRAM, country or region; cordoned, draining and unhealthy ones never), do not already
 * serve the model, and are least loaded. When none qualifies, the reason names the constraint that
 * emptied the list and the best machine it turned away.
 */
export function placeReplica(needs: PlacementNeeds, machines: readonly MachineView[]): Placement {
  let candidates = machines.filter((m) => m.status === "READY" || m.status === "BUSY");
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
    const withGpu = candidates.filter((m) =>
      want === "none" ? m.hardware.gpus.length === 0 : m.hardware.gpus.some((g) => g.vendor === want),
    );
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
    const allowed = (m: MachineView) =>
      m.country !== null &&
      (needs.countries.length === 0 || needs.countries.includes(m.country)) &&
      (needs.region !== "eu" || EU_COUNTRIES.has(m.country));
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

  const fresh = candidates.filter(
    (m) => !m.inference?.models.some((x) => x.name === needs.model && x.state !== "error"),
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
