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
import { type Constraints, meetsConstraints } from "../placement/constraints.ts";
import { type Exclusion, gb, type Needs, type Placement, place } from "../placement/place.ts";

/** What a job asks of its machine, read from its spec. */
export interface JobAsk {
  constraints: Constraints;
  gpuCount: number;
  /** On each GPU it is given. */
  minVramBytes: number | null;
  memoryBytes: number | null;
  cpus: number;
  /** What it names that only podman runs ("a rootfs", "an image"); null: any runner will do. */
  podman: string | null;
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
    podman: spec.rootfs !== undefined ? "a rootfs" : spec.image !== undefined ? "an image" : null,
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
 * Machines that cannot run the job's runner: a rootfs or an image needs podman. An agent that has not
 * said what it has (an older one) is offered the job, and declines it if it must.
 */
function lacksRunner(ask: JobAsk): Exclusion | undefined {
  if (ask.podman === null) return undefined;
  return {
    excludes: (m) => m.runners !== undefined && m.runners.podman === null,
    reason: () =>
      `no ready machine in pool ${ask.constraints.pool} has podman, which a job in ${ask.podman} needs (install podman on a machine, or run the job without ${ask.podman})`,
  };
}

/** Both exclusions: the reason is the first's when it alone rules out every machine. */
function either(first: Exclusion | undefined, second: Exclusion | undefined): Exclusion | undefined {
  if (first === undefined || second === undefined) return first ?? second;
  return { excludes: (m) => first.excludes(m) || second.excludes(m), reason: second.reason };
}

/**
 * Why no machine has the job's GPUs free, per what it asks: taken by other jobs (it runs when one is
 * free), or none with the VRAM it asks on each ("needs 1 nvidia GPU with 24.0 GB VRAM: the largest
 * free is 8.0 GB on m1").
 */
function gpuShortage(
  ask: JobAsk,
  machines: readonly MachineView[],
  loads: ReadonlyMap<string, MachineLoad>,
): string {
  const where = machines.filter(
    (m) => (m.status === "READY" || m.status === "BUSY") && meetsConstraints(ask.constraints, m),
  );
  if (where.some((m) => freeGpus(ask, m, new Set()).length >= ask.gpuCount))
    return "every machine that fits has its GPUs taken by other jobs; it runs when one is free";
  const vendor = ask.constraints.gpu === "any" ? "" : `${ask.constraints.gpu} `;
  const each =
    ask.minVramBytes === null ? "" : ` with ${gb(ask.minVramBytes)} VRAM${ask.gpuCount > 1 ? " each" : ""}`;
  let largest: { bytes: number; on: string } | undefined;
  for (const m of where) {
    const taken = loads.get(m.id)?.gpus ?? new Set<number>();
    for (const g of m.hardware.gpus) {
      if (taken.has(g.index) || (ask.constraints.gpu !== "any" && g.vendor !== ask.constraints.gpu)) continue;
      if (largest === undefined || g.memory_total_bytes > largest.bytes)
        largest = { bytes: g.memory_total_bytes, on: m.name };
    }
  }
  const free =
    largest === undefined ? "none is free" : `the largest free is ${gb(largest.bytes)} on ${largest.on}`;
  return `needs ${ask.gpuCount} ${vendor}GPU${ask.gpuCount > 1 ? "s" : ""}${each}: ${free}`;
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
    reason: () => gpuShortage(ask, machines, loads),
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
        first === p.machines[0]
          ? p.why
          : `fewest jobs of ${machines.length} that fit: ${first.name} runs ${loads.get(first.id)?.jobs ?? 0}`,
    };
  };
  // The runner first: a rootfs job that waits for podman says so, not that GPUs are taken.
  const runner = lacksRunner(ask);
  if (runner !== undefined) {
    const withRunner = place(needsOf(ask, runner), views);
    if (!withRunner.ok) return withRunner;
  }
  const exclude = either(runner, ask.gpuCount > 0 ? gpusFree : undefined);
  if (avoid.size > 0) {
    const elsewhere = place(
      needsOf(
        ask,
        {
          excludes: (m) => (exclude?.excludes(m) ?? false) || avoid.has(m.id),
          reason: gpusFree.reason,
        },
        carbonOf,
      ),
      views,
    );
    if (elsewhere.ok) return spread(elsewhere);
  }
  return spread(place(needsOf(ask, exclude, carbonOf), views));
}
