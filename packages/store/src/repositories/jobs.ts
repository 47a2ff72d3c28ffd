import { JOB_ENDED, JOB_ENTERED_FROM, type JobState } from "@beta9/protocol";
import { type Selectable, sql } from "kysely";
import type { JobEventTable, JobTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type Job = Selectable<JobTable>;
export type JobEvent = Selectable<JobEventTable>;

/** What a submitter decides of a new job; the repository sets the rest. */
export type NewJob = Pick<
  Job,
  "id" | "workspace_id" | "key_id" | "idempotency_key" | "spec" | "priority" | "max_retries"
> & { request_id?: string | null };

export interface TransitionInfo {
  reason?: string | null;
  /** The machine it was assigned to (ASSIGNED); kept through the run, cleared when queued again. */
  machineId?: string;
  exitCode?: number | null;
  /** The GPU indexes the run was given (ASSIGNED); cleared when queued again. */
  gpus?: readonly number[];
}

/**
 * Jobs and their events. A transition is one conditional UPDATE (the job must be in a state the
 * target may be entered from), so concurrent gateways agree on every job's state: of two that try to
 * assign the same job, one changes it and the other is told it did not. Run create() and
 * transition() inside Store.transaction so a job's row and its event land together.
 */
export class JobRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /**
   * Queue a new job, or return the one already made with the same idempotency key in the workspace
   * (`created: false`): a submission retried after a lost answer makes no second job.
   */
  async create(job: NewJob, now: number): Promise<{ job: Job; created: boolean }> {
    if (job.idempotency_key !== null) {
      const existing = await this.byIdempotencyKey(job.workspace_id, job.idempotency_key);
      if (existing) return { job: existing, created: false };
    }
    const row: Job = {
      ...job,
      queued_at: queueTime(now),
      state: "QUEUED",
      reason: null,
      attempt: 1,
      machine_id: null,
      version: 1,
      exit_code: null,
      created_at: now,
      updated_at: now,
      started_at: null,
      finished_at: null,
      gpus: null,
      log_lines: 0,
      agent_seq: 0,
      request_id: job.request_id ?? null,
    };
    await this.#db.insertInto("jobs").values(row).execute();
    await this.#event(row, now);
    return { job: row, created: true };
  }

  async byIdempotencyKey(workspaceId: string, key: string): Promise<Job | undefined> {
    return this.#db
      .selectFrom("jobs")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("idempotency_key", "=", key)
      .executeTakeFirst();
  }

  /** A job by id; with `workspaceId`, only if it is that workspace's (another's is as good as absent). */
  async get(id: string, workspaceId?: string): Promise<Job | undefined> {
    let q = this.#db.selectFrom("jobs").selectAll().where("id", "=", id);
    if (workspaceId !== undefined) q = q.where("workspace_id", "=", workspaceId);
    return q.executeTakeFirst();
  }

  /** The states of these jobs (one query however many), by id; an id with no job is left out. */
  async states(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const rows = await this.#db.selectFrom("jobs").select(["id", "state"]).where("id", "in", ids).execute();
    return new Map(rows.map((r) => [r.id, r.state]));
  }

  /** A workspace's jobs, newest first; `before` (a created_at, id pair) pages on. */
  async list(
    workspaceId: string,
    opts: { states?: readonly JobState[]; limit?: number; before?: { created_at: number; id: string } } = {},
  ): Promise<Job[]> {
    let q = this.#db.selectFrom("jobs").selectAll().where("workspace_id", "=", workspaceId);
    if (opts.states?.length) q = q.where("state", "in", opts.states);
    if (opts.before) {
      const b = opts.before;
      q = q.where((eb) =>
        eb.or([
          eb("created_at", "<", b.created_at),
          eb.and([eb("created_at", "=", b.created_at), eb("id", "<", b.id)]),
        ]),
      );
    }
    return q
      .orderBy("created_at", "desc")
      .orderBy("id", "desc")
      .limit(opts.limit ?? 100)
      .execute();
  }

  /** The front of the queue: QUEUED jobs, higher priority first, then in the order first queued. */
  async queued(limit = 100): Promise<Job[]> {
    return this.#db
      .selectFrom("jobs")
      .selectAll()
      .where("state", "=", "QUEUED")
      .orderBy("priority", "desc")
      .orderBy("queued_at")
      .orderBy("id")
      .limit(limit)
      .execute();
  }

  /**
   * Move a job to `to` if its state allows (JOB_ENTERED_FROM) and record the event; returns the job
   * as it now is, or undefined when it was not in such a state (another gateway moved it first, or
   * it ended). Back to QUEUED after LOST or FAILED is a retry: allowed while retries are left, it
   * counts an attempt and keeps the job's place in the queue.
   */
  async transition(id: string, to: JobState, info: TransitionInfo, now: number): Promise<Job | undefined> {
    const from = JOB_ENTERED_FROM[to];
    let q = this.#db
      .updateTable("jobs")
      .set({
        state: to,
        reason: info.reason ?? null,
        version: sql<number>`version + 1`,
        updated_at: now,
      })
      .where("id", "=", id)
      .where("state", "in", from);
    if (to === "QUEUED") {
      // A declined assignment costs no attempt; a retry does, and needs one left.
      q = q
        .set({
          machine_id: null,
          exit_code: null,
          started_at: null,
          finished_at: null,
          gpus: null,
          agent_seq: 0,
          attempt: sql<number>`case when state = 'ASSIGNED' then attempt else attempt + 1 end`,
        })
        .where((eb) => eb.or([eb("state", "=", "ASSIGNED"), eb("attempt", "<=", eb.ref("max_retries"))]));
    }
    if (to === "ASSIGNED")
      q = q.set({
        machine_id: info.machineId ?? null,
        gpus: info.gpus?.length ? JSON.stringify(info.gpus) : null,
        agent_seq: 0,
      });
    if (to === "RUNNING") q = q.set({ started_at: now });
    if (JOB_ENDED.has(to)) q = q.set({ finished_at: now, exit_code: info.exitCode ?? null });
    const job = await q.returningAll().executeTakeFirst();
    if (job) await this.#event(job, now);
    return job;
  }

  /** Jobs on a machine now (ASSIGNED, PREPARING, RUNNING), of every workspace. */
  async active(): Promise<Job[]> {
    // Literal, as the partial index jobs_active says it: SQLite uses such an index only for the same
    // expression, never for bound parameters.
    return this.#db
      .selectFrom("jobs")
      .selectAll()
      .where(sql<boolean>`state in ('ASSIGNED', 'PREPARING', 'RUNNING')`)
      .execute();
  }

  /**
   * Say why a QUEUED job waits, without a transition (a wait's reason changes as machines come and
   * go; the event table records transitions only). False when it is no longer QUEUED.
   */
  async setWaitReason(id: string, reason: string, now: number): Promise<boolean> {
    const r = await this.#db
      .updateTable("jobs")
      .set({ reason, updated_at: now })
      .where("id", "=", id)
      .where("state", "=", "QUEUED")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** A job's transitions, oldest first. */
  async events(id: string): Promise<JobEvent[]> {
    return this.#db.selectFrom("job_events").selectAll().where("job_id", "=", id).orderBy("seq").execute();
  }

  async #event(job: Job, now: number): Promise<void> {
    await this.#db
      .insertInto("job_events")
      .values({
        job_id: job.id,
        seq: job.version,
        at: now,
        state: job.state,
        reason: job.reason,
        machine_id: job.machine_id,
      })
      .execute();
  }
}

let lastQueueTime = 0;

/**
 * A job's place in the queue: microseconds since the epoch, strictly increasing within this process,
 * so jobs submitted to one gateway in the same millisecond keep their order.
 */
function queueTime(now: number): number {
  lastQueueTime = Math.max(now * 1000, lastQueueTime + 1);
  return lastQueueTime;
}
