import {
  type CreateJob,
  type Hardware,
  JOB_ENDED,
  JOB_RETRY_CAUSES,
  type JobRetryCause,
  type JobState,
  type MachineView,
  retryCause,
} from "@beta9/protocol";
import type { Job, Machine } from "@beta9/store";
import type { CarbonOf } from "../placement/carbon-rank.ts";
import type { Constraints } from "../placement/constraints.ts";
import { type Exclusion, type Needs, type Placement, place } from "../placement/place.ts";

/** What a job asks of its machine, read from its spec. */
export interface JobAsk {
  constraints: Constraints;
  gpuCount: number;
  /** On each GPU it is given. */
  minVramBytes: number | null;
  memoryBytes: number | null;
  cpus: number;
  /** Rank machines by their grid's carbon rather than their load (`prefer: "low-carbon"`). */
  lowCarbon: boolean;
}

/**
 * Whether the job has ended for good: in an end state with no retry to come. A LOST or FAILED job is
 * queued again while it has attempts left and its spec's retry_on names why it ended.
 */
export function endedForGood(
  job: Pick<Job, "state" | "attempt" | "max_retries" | "spec" | "reason" | "exit_code">,
): boolean {
  if (!JOB_ENDED.has(job.state as JobState)) return false;
  if (job.state !== "LOST" && job.state !== "FAILED") return true;
  if (job.attempt > job.max_retries) return true;
  const cause: JobRetryCause =
    job.state === "LOST"
      ? "lost"
      : retryCause({
          out_of_memory: job.reason?.startsWith(OUT_OF_MEMORY) ?? false,
          exit_code: job.exit_code,
        });
  return !retries(job, cause);
}

/** How a run's end over its memory limit starts its reason (run.ts writes it, endedForGood reads it). */
export const OUT_OF_MEMORY = "out of memory:";

/** Whether the job's spec retries a run that ended for this cause (retry_on; default every cause). */
export function retries(job: Pick<Job, "spec">, cause: JobRetryCause): boolean {
  const spec = JSON.parse(job.spec) as CreateJob;
  const on: readonly JobRetryCause[] = spec.retry_on ?? JOB_RETRY_CAUSES;
  return on.includes(cause);
}

export function jobAsk(spec: CreateJob): JobAsk {
  const r = spec.resources ?? {};
  const gpu = r.gpu ?? "none";
  return {
    constraints: {
      pool: spec.pool ?? "external",
      // A CPU job runs on any machine, with or without GPUs (placement's "none" means "no GPU at all").
      gpu: gpu === "none" ? "any" : gpu,
      countries: spec.countries ?? [],
      region: spec.region ?? null,
    },
    gpuCount: gpu === "none" ? 0 : (r.gpu_count ?? 1),
    minVramBytes: gpu === "none" ? null : (r.min_vram_bytes ?? null),
    memoryBytes: r.memory_bytes ?? null,
    cpus: r.cpu ?? 1,
    lowCarbon: spec.prefer === "low-carbon",
  };
}

/** What the jobs already on a machine hold of it: their memory, and their GPUs outright. */
export interface MachineLoad {
  jobs: number;
  memoryBytes: number;
  gpus: Set<number>;
}

export function loadOf(jobs: readonly Job[]): Map<string, MachineLoad> {
  const out = new Map<string, MachineLoad>();
  for (const j of jobs) {
    if (!j.machine_id) continue;
    const load = out.get(j.machine_id) ?? { jobs: 0, memoryBytes: 0, gpus: new Set<number>() };
    load.jobs++;
    load.memoryBytes += jobAsk(JSON.parse(j.spec) as CreateJob).memoryBytes ?? 0;
    for (const g of JSON.parse(j.gpus ?? "[]") as number[]) load.gpus.add(g);
    out.set(j.machine_id, load);
  }
  return out;
}

/** The GPUs a job may be given on a machine: of its vendor, with the VRAM it asks, not another job's. */
export function freeGpus(ask: JobAsk, m: MachineView, taken: ReadonlySet<number>): number[] {
  if (ask.gpuCount === 0) return [];
  return m.hardware.gpus
    .filter(
      (g) =>
        (ask.constraints.gpu === "any" || g.vendor === ask.constraints.gpu) &&
        !taken.has(g.index) &&
        (ask.minVramBytes === null || g.memory_total_bytes >= ask.minVramBytes),
    )
    .map((g) => g.index)
    .slice(0, ask.gpuCount);
}

/**
 * The machine as it is for another job: free memory is what it reports and what the jobs there have
 * not asked for, whichever is less (a job just started has not used its memory yet); its VRAM is that
 * of its biggest GPU no job holds.
 */
function asLoaded(ask: JobAsk, m: MachineView, load: MachineLoad | undefined): MachineView {
  if (!load) return m;
  const unasked = m.hardware.memory_total_bytes - load.memoryBytes;
  const reported = m.inference?.memory_free_bytes ?? unasked;
  const gpus = m.hardware.gpus.filter((g) => !load.gpus.has(g.index));
  const vram = gpus.some((g) => g.unified_memory)
    ? Math.min(reported, unasked)
    : Math.max(0, ...gpus.map((g) => g.memory_total_bytes));
  return {
    ...m,
    inference: {
      engines: m.inference?.engines ?? [],
      models: m.inference?.models ?? [],
      memory_free_bytes: Math.max(0, Math.min(reported, unasked)),
      vram_free_bytes: ask.gpuCount === 0 ? (m.inference?.vram_free_bytes ?? null) : vram,
    },
  };
}

/**
 * A machine's stored row as if it were READY and ran nothing: for "could this job ever run here?",
 * asked of every machine in the store (one joined through another replica too).
 */
function asEmpty(row: Machine): MachineView {
  const hardware = JSON.parse(row.hardware) as Hardware;
  const unified = hardware.gpus.some((g) => g.unified_memory);
  return {
    id: row.id,
    name: row.name,
    pool: row.pool,
    hostname: row.hostname,
    agent_version: row.agent_version,
    country: row.country,
    hardware,
    usage: null,
    running_jobs: 0,
    joined_at: new Date(row.joined_at).toISOString(),
    last_heartbeat_at: null,
    status: "READY",
    connection: "channel",
    cordoned: false,
    draining: false,
    inference: {
      engines: [],
      models: [],
      memory_free_bytes: hardware.memory_total_bytes,
      vram_free_bytes: unified
        ? hardware.memory_total_bytes
        : Math.max(0, ...hardware.gpus.map((g) => g.memory_total_bytes)),
    },
  };
}

function needsOf(ask: JobAsk, exclude?: Exclusion, carbonOf?: CarbonOf): Needs {
  return {
    constraints: ask.constraints,
    resources: { vramBytes: ask.minVramBytes, memoryBytes: ask.memoryBytes },
    askedBy: "this job",
    exclude,
    // A job's energy is not known ahead: machines rank by what each kWh they draw emits.
    lowCarbon: ask.lowCarbon && carbonOf ? { carbonOf, unit: "energy" } : undefined,
  };
}

/**
 * Whether the job could run on one of these machines if they were all READY and empty: the reason
 * when none could, whatever their state now (then it never will, and is refused at submission).
 */
export function everFits(ask: JobAsk, machines: readonly Machine[]): Placement {
  const enough: Exclusion = {
    excludes: (m) => freeGpus(ask, m, new Set()).length < ask.gpuCount,
    reason: () => `no machine in pool ${ask.constraints.pool} has ${ask.gpuCount} such GPUs`,
  };
  // Fork agents (keepalive machines) run no jobs.
  return place(needsOf(ask, enough), machines.filter((m) => m.protocol !== "keepalive").map(asEmpty));
}

/**
 * Where the job may go now, best first, after what the jobs on each machine hold; machines in
 * `avoid` (where it was lost or failed before) only when no other fits.
 */
export function placeNow(
  ask: JobAsk,
  machines: readonly MachineView[],
  loads: ReadonlyMap<string, MachineLoad>,
  avoid: ReadonlySet<string>,
  carbonOf?: CarbonOf,
): Placement {
  const views = machines.map((m) => asLoaded(ask, m, loads.get(m.id)));
  const gpusFree: Exclusion = {
    excludes: (m) => freeGpus(ask, m, loads.get(m.id)?.gpus ?? new Set()).length < ask.gpuCount,
    reason: () => `every machine that fits has its GPUs taken by other jobs; it runs when one is free`,
  };
  // Among the machines placement ranks alike, the one with the fewest jobs first (a stable sort);
  // a low-carbon job keeps placement's carbon order.
  const spread = (p: Placement): Placement => {
    if (!p.ok || ask.lowCarbon) return p;
    const machines = [...p.machines].sort(
      (a, b) => (loads.get(a.id)?.jobs ?? 0) - (loads.get(b.id)?.jobs ?? 0),
    );
    const first = machines[0]!;
    return {
      ok: true,
      machines,
      why:
        machines.length === 1
          ? p.why
          : `fewest jobs of ${machines.length} that fit: ${first.name} runs ${loads.get(first.id)?.jobs ?? 0}`,
    };
  };
  if (avoid.size > 0) {
    const elsewhere = place(
      needsOf(
        ask,
        {
          excludes: (m) => gpusFree.excludes(m) || avoid.has(m.id),
          reason: gpusFree.reason,
        },
        carbonOf,
      ),
      views,
    );
    if (elsewhere.ok) return spread(elsewhere);
  }
  return spread(place(needsOf(ask, ask.gpuCount > 0 ? gpusFree : undefined, carbonOf), views));
}
