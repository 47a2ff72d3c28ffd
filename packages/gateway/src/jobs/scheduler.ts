import type { Logger } from "@beta9/http";
import { type CreateJob, type JobState, MAX_JOB_INPUT_BYTES } from "@beta9/protocol";
import type { Job, LogBound, Store, Workspace } from "@beta9/store";
import type { Audit } from "../audit/audit.ts";
import type { CarbonSource } from "../carbon/footprint.ts";
import type { MachineRegistry } from "../machines/registry.ts";
import type { CarbonOf } from "../placement/carbon-rank.ts";
import { LogFeed } from "./log-feed.ts";
import { freeGpus, jobAsk, loadOf, placeNow, retries } from "./needs.ts";
import { Run, type RunOutcome } from "./run.ts";
import { jobRunEvent, recordRunUsage } from "./usage.ts";

export interface JobSchedulerOptions {
  store: Store;
  registry: MachineRegistry;
  log: Logger;
  /** How many of a job's log lines the gateway keeps: the first and the last. */
  logBound?: LogBound;
  /** The biggest output kept. */
  maxOutputBytes?: number;
  tickMs?: number;
  /** Whether another gateway replica holds machines' channels now. */
  peersHoldMachines?: () => boolean;
  onTransition?: (to: JobState) => void;
  /** Grid intensity and machines' PUE, for runs' footprints. */
  carbon?: CarbonSource | undefined;
  /** What is known of each machine's carbon, for jobs that prefer low carbon. */
  carbonOf?: CarbonOf;
  /** Each run's end as an audit event (jobs/usage.ts, jobRunEvent). */
  audit?: Audit | undefined;
}

export const DEFAULT_LOG_BOUND: LogBound = { head: 1_000, tail: 10_000 };
/** An output is held whole while it is hashed and stored: as much as a job's inputs together. */
export const DEFAULT_MAX_OUTPUT_BYTES = MAX_JOB_INPUT_BYTES;
/** A machine that declined a job is not offered it again for this long. */
const DECLINED_MS = 30_000;
/** A run whose re-attach failed is tried again after this long. */
const REATTACH_MS = 2_000;
const QUEUE_SLICE = 200;
/** The window of a workspace's GPU-hours limit. */
const DAY_MS = 24 * 3600_000;

/**
 * Jobs on this gateway's machines: assigns the front of the queue to machines connected here (the
 * store's conditional claim keeps it unique across replicas), follows each run over its machine's
 * channel, re-attaches to runs whose channel dropped (or that an earlier gateway started) when their
 * machine is back, and marks a run LOST when its machine goes offline or is removed, queueing it
 * again while its retries allow. Only the replica holding a machine's channel follows its runs.
 */
export class JobScheduler {
  readonly feed = new LogFeed();
  readonly #o: Required<
    Omit<JobSchedulerOptions, "onTransition" | "peersHoldMachines" | "carbon" | "carbonOf" | "audit">
  > &
    Pick<JobSchedulerOptions, "onTransition" | "peersHoldMachines" | "carbon" | "carbonOf" | "audit">;
  readonly #runs = new Map<string, Run>();
  /** job id → machine id → until when that machine is not offered the job again, and its words. */
  readonly #declined = new Map<string, Map<string, { until: number; reason: string }>>();
  readonly #reattachAfter = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(o: JobSchedulerOptions) {
    this.#o = {
      logBound: DEFAULT_LOG_BOUND,
      maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES,
      tickMs: 500,
      ...o,
    };
  }

  start(): void {
    this.#timer = setInterval(() => this.nudge(), this.#o.tickMs);
    this.#timer.unref();
    this.nudge();
  }

  /** Look at the queue and the runs now (a job was submitted, a machine joined). */
  nudge(): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = this.#tick()
      .catch((err: unknown) => this.#o.log.warn({ err }, "the job scheduler's pass failed; trying again"))
      .finally(() => {
        this.#ticking = undefined;
        if (this.#again) {
          this.#again = false;
          this.nudge();
        }
      });
  }

  /** Stop following runs; they go on on their machines, and a gateway re-attaches when it can. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const run of this.#runs.values()) run.detach();
    await this.#ticking;
  }

  /** Runs followed by this gateway now. */
  following(): number {
    return this.#runs.size;
  }

  /** Clients waiting here for a job's next log lines. */
  logFollowers(): number {
    return this.feed.waiting();
  }

  /** A job was cancelled: stop its run now if it is followed here (else the replica that follows it will). */
  async cancel(jobId: string): Promise<void> {
    await this.#runs.get(jobId)?.cancel();
  }

  async #tick(): Promise<void> {
    const { store, registry } = this.#o;
    const now = Date.now();
    this.#forgetPast(now);
    const active = await store.jobs.active();
    const activeIds = new Set(active.map((j) => j.id));
    // Runs followed here whose job was cancelled meanwhile (through this or another replica): their
    // states in one read, however many runs are wrapping up (a pass may come after every run's end).
    const ended = [...this.#runs.keys()].filter((id) => !activeIds.has(id));
    const states = await store.jobs.states(ended);
    for (const id of ended) if (states.get(id) === "CANCELLED") await this.#runs.get(id)?.cancel();

    for (const job of active) {
      if (this.#runs.has(job.id) || job.machine_id === null) continue;
      const status = registry.status(job.machine_id);
      // A machine this replica does not know yet (joined through a peer) is not a removed one.
      if (status === undefined && (await store.machines.get(job.machine_id))) continue;
      if (status === undefined || status === "OFFLINE") {
        await this.#lose(job, status === undefined ? "was removed" : "went offline");
        continue;
      }
      const link = registry.link(job.machine_id);
      if (!link?.request || !registry.isConnected(job.machine_id)) continue;
      if ((this.#reattachAfter.get(job.id) ?? 0) > now) continue;
      this.#follow(job, "reattach");
    }
    await this.#assign(active, now);
  }

  /** GPU-seconds of a workspace in the 24 h before `now`: runs ended in it, and its GPU jobs running now. */
  async #gpuSecondsToday(workspaceId: string, active: readonly Job[], now: number): Promise<number> {
    let seconds = await this.#o.store.jobRuns.gpuSecondsSince(workspaceId, now - DAY_MS);
    for (const j of active) {
      if (j.workspace_id !== workspaceId || j.started_at === null) continue;
      const gpus = jobAsk(JSON.parse(j.spec) as CreateJob).gpuCount;
      seconds += (gpus * Math.max(0, now - Math.max(j.started_at, now - DAY_MS))) / 1000;
    }
    return seconds;
  }

  async #assign(active: Job[], now: number): Promise<void> {
    const { store, registry } = this.#o;
    const queued = await store.jobs.queued(QUEUE_SLICE);
    if (queued.length === 0) return;
    const machines = registry
      .views()
      .filter((m) => registry.isConnected(m.id) && registry.link(m.id)?.request);
    // Other replicas hold every machine: they assign, and say why a job waits.
    if (machines.length === 0 && this.#o.peersHoldMachines?.()) return;
    const loads = loadOf(active);
    // Each workspace's jobs on machines, against its limit (read once a pass).
    const onMachines = new Map<string, number>();
    for (const j of active) onMachines.set(j.workspace_id, (onMachines.get(j.workspace_id) ?? 0) + 1);
    const workspaces = new Map<string, Workspace | undefined>();
    /** GPU-seconds each workspace used in the last 24 h: ended runs, and those on machines so far. */
    const gpuUsed = new Map<string, number>();
    for (const job of queued) {
      // Queued again by its own run (a retry after FAILED) that is still wrapping up: next pass.
      if (this.#runs.has(job.id)) continue;
      const ws = job.workspace_id;
      if (!workspaces.has(ws)) workspaces.set(ws, await store.workspaces.byId(ws));
      const limit = workspaces.get(ws)?.max_jobs ?? null;
      if (limit !== null && (onMachines.get(ws) ?? 0) >= limit) {
        const reason = `its workspace has ${onMachines.get(ws)} jobs running, its limit (max_jobs ${limit}); it runs when one ends`;
        if (job.reason !== reason) await store.jobs.setWaitReason(job.id, reason, now);
        continue;
      }
      const ask = jobAsk(JSON.parse(job.spec) as CreateJob);
      const gpuHours = workspaces.get(ws)?.gpu_hours_per_day ?? null;
      if (gpuHours !== null && ask.gpuCount > 0) {
        if (!gpuUsed.has(ws)) gpuUsed.set(ws, await this.#gpuSecondsToday(ws, active, now));
        const used = gpuUsed.get(ws) ?? 0;
        if (used >= gpuHours * 3600) {
          const reason = `its workspace used ${(used / 3600).toFixed(2)} GPU-hours in the last 24 h, its limit (gpu_hours_per_day ${gpuHours}); it runs once older use falls out of that window`;
          if (job.reason !== reason) await store.jobs.setWaitReason(job.id, reason, now);
          continue;
        }
      }
      const declined = this.#declined.get(job.id);
      const offered = declined ? machines.filter((m) => (declined.get(m.id)?.until ?? 0) <= now) : machines;
      const placed = placeNow(ask, offered, loads, await this.#triedOn(job), this.#o.carbonOf);
      if (!placed.ok) {
        // Every machine declined it: their own words say why (a missing runner, a rootfs not allowed).
        const reason =
          declined && machines.length > offered.length && offered.length === 0
            ? `${[...declined.values()].map((d) => d.reason).join("; ")}; trying again soon`
            : placed.reason;
        if (job.reason !== reason) await store.jobs.setWaitReason(job.id, reason, now);
        continue;
      }
      const machine = placed.machines[0]!;
      const load = loads.get(machine.id) ?? { jobs: 0, memoryBytes: 0, gpus: new Set<number>() };
      const gpus = freeGpus(ask, machine, load.gpus);
      const claimed = await store.transaction((tx) =>
        tx.jobs.transition(
          job.id,
          "ASSIGNED",
          { machineId: machine.id, gpus, reason: `assigned to ${machine.name}: ${placed.why}` },
          now,
        ),
      );
      // Another replica took it first.
      if (!claimed) continue;
      this.#o.onTransition?.("ASSIGNED");
      onMachines.set(ws, (onMachines.get(ws) ?? 0) + 1);
      this.feed.notify(job.id);
      load.jobs++;
      load.memoryBytes += ask.memoryBytes ?? 0;
      for (const g of gpus) load.gpus.add(g);
      loads.set(machine.id, load);
      this.#o.log.info(
        { job_id: job.id, machine_id: machine.id, gpus, attempt: claimed.attempt },
        `job ${job.id} assigned to ${machine.name}`,
      );
      this.#follow(claimed, "start");
    }
  }

  /** Declines and re-attach delays that have run out are forgotten: the maps hold only what still counts. */
  #forgetPast(now: number): void {
    for (const [job, machines] of this.#declined) {
      for (const [m, { until }] of machines) if (until <= now) machines.delete(m);
      if (machines.size === 0) this.#declined.delete(job);
    }
    for (const [job, after] of this.#reattachAfter) if (after <= now) this.#reattachAfter.delete(job);
  }

  /** Machines an earlier attempt of the job was lost or failed on: another is preferred. */
  async #triedOn(job: Job): Promise<Set<string>> {
    if (job.attempt === 1) return new Set();
    const events = await this.#o.store.jobs.events(job.id);
    return new Set(
      events
        .filter((e) => (e.state === "LOST" || e.state === "FAILED") && e.machine_id)
        .map((e) => e.machine_id!),
    );
  }

  #follow(job: Job, mode: "start" | "reattach"): void {
    const link = this.#o.registry.link(job.machine_id!);
    if (!link) return;
    const run = new Run(job, link, {
      store: this.#o.store,
      log: this.#o.log,
      feed: this.feed,
      logBound: this.#o.logBound,
      maxOutputBytes: this.#o.maxOutputBytes,
      onTransition: this.#o.onTransition,
      carbon: this.#o.carbon,
      audit: this.#o.audit,
    });
    this.#runs.set(job.id, run);
    void run
      .follow(mode)
      .then((outcome) => this.#settle(job, outcome))
      .catch((err: unknown) => {
        this.#o.log.warn({ err, job_id: job.id }, `following job ${job.id} failed; re-attaching`);
        this.#reattachAfter.set(job.id, Date.now() + REATTACH_MS);
      })
      .finally(() => {
        if (this.#runs.get(job.id) === run) this.#runs.delete(job.id);
        this.nudge();
      });
  }

  async #settle(job: Job, outcome: RunOutcome): Promise<void> {
    const machineId = job.machine_id!;
    switch (outcome.kind) {
      case "declined": {
        const m = this.#declined.get(job.id) ?? new Map<string, { until: number; reason: string }>();
        m.set(machineId, { until: Date.now() + DECLINED_MS, reason: outcome.reason });
        this.#declined.set(job.id, m);
        this.#o.log.info({ job_id: job.id, machine_id: machineId }, outcome.reason);
        return;
      }
      case "unknown": {
        if (job.state !== "ASSIGNED") {
          await this.#lose(job, "does not know the run (its agent restarted)");
          return;
        }
        // Claimed, but the assignment never reached the machine (a gateway stopped in between): it
        // never ran, so it goes back to its place in the queue without spending an attempt.
        const reason = `machine ${machineId} never got the assignment; queued again`;
        const again = await this.#o.store.transaction((tx) =>
          tx.jobs.transition(job.id, "QUEUED", { reason }, Date.now()),
        );
        if (again) this.#o.onTransition?.("QUEUED");
        return;
      }
      case "detached":
        this.#reattachAfter.set(job.id, Date.now() + REATTACH_MS);
        return;
      case "ended":
        this.#declined.delete(job.id);
        this.#reattachAfter.delete(job.id);
        this.#o.log.info(
          { job_id: job.id, machine_id: machineId, state: outcome.state },
          `job ${job.id} ended ${outcome.state}`,
        );
    }
  }

  /** The job's machine is gone: LOST, then queued again (elsewhere if it can) while retries allow. */
  async #lose(job: Job, what: string): Promise<void> {
    const { store, log } = this.#o;
    const now = Date.now();
    const reason = `machine ${job.machine_id} ${what} while it ran the job`;
    const lost = await store.transaction((tx) => tx.jobs.transition(job.id, "LOST", { reason }, now));
    if (!lost) return;
    this.#o.onTransition?.("LOST");
    log.warn({ job_id: job.id, machine_id: job.machine_id }, `job ${job.id} LOST: ${reason}`);
    if (job.started_at !== null && job.machine_id) {
      await recordRunUsage(store, job, job.machine_id, job.started_at, now);
      this.#o.audit?.enqueue(
        jobRunEvent(lost, {
          machineId: job.machine_id,
          country: this.#o.registry.get(job.machine_id)?.country ?? null,
          state: "LOST",
          exitCode: null,
          startedAt: job.started_at,
          endedAt: now,
        }),
      );
    }
    const again =
      retries(job, "lost") &&
      (await store.transaction((tx) =>
        tx.jobs.transition(job.id, "QUEUED", { reason: `retry after LOST: ${reason}` }, now),
      ));
    if (again) this.#o.onTransition?.("QUEUED");
    this.feed.notify(job.id);
    this.nudge();
  }
}
