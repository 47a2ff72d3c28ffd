import type { Logger } from "@beta9/http";
import { type CreateJob, type JobRunEvent, type JobState, retryCause } from "@beta9/protocol";
import type { Job, LogBound, NewJobLog, Store } from "@beta9/store";
import type { Audit } from "../audit/audit.ts";
import { type CarbonSource, jobFootprint } from "../carbon/footprint.ts";
import type { AgentLink } from "../machines/registry.ts";
import {
  cancelRun,
  fetchOutput,
  forgetRun,
  type RunStream,
  reattachRun,
  runEvents,
  startRun,
} from "./agent-runs.ts";
import type { LogFeed } from "./log-feed.ts";
import { OUT_OF_MEMORY, retries } from "./needs.ts";
import { jobRunEvent, recordRunUsage } from "./usage.ts";

export interface RunDeps {
  store: Store;
  log: Logger;
  feed: LogFeed;
  logBound: LogBound;
  maxOutputBytes: number;
  /** Each transition this gateway made, for metrics. */
  onTransition?: (to: JobState) => void;
  /** Grid intensity and machines' PUE, for a run's footprint (carbon/footprint.ts). */
  carbon?: CarbonSource | undefined;
  /** Each run's end as an audit event (jobRunEvent). */
  audit?: Audit | undefined;
}

/** How a followed run ended on this gateway. */
export type RunOutcome =
  /** The agent would not take it (its answer or silence): back to the queue, not to this machine soon. */
  | { kind: "declined"; reason: string }
  /** The agent does not know the run (it restarted, or never got it). */
  | { kind: "unknown" }
  /** The stream broke before the run's end: re-attach when the machine is back. */
  | { kind: "detached" }
  | { kind: "ended"; state: JobState };

const ENDS = new Set(["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"]);

/**
 * One run of a job on one machine, followed over the machine's channel: its states become the job's
 * transitions, its log lines are kept (bounded), its outputs fetched and kept by sha256, and once it
 * has ended the agent is told to forget it.
 */
export class Run {
  readonly jobId: string;
  readonly machineId: string;
  readonly #deps: RunDeps;
  readonly #link: AgentLink;
  #job: Job;
  #seq: number;
  #startedAt: number | null;
  #cancelSent = false;
  #stopped = false;
  #cancelStream: (() => void) | undefined;

  constructor(job: Job, link: AgentLink, deps: RunDeps) {
    this.#job = job;
    this.jobId = job.id;
    this.machineId = job.machine_id ?? "";
    this.#link = link;
    this.#deps = deps;
    this.#seq = job.agent_seq;
    this.#startedAt = job.started_at;
  }

  /** Start the run on the machine (a new assignment), or follow it again from the last event kept. */
  async follow(mode: "start" | "reattach"): Promise<RunOutcome> {
    const stream =
      mode === "start"
        ? await startRun(this.machineId, this.#link, await this.#assignment())
        : await reattachRun(this.machineId, this.#link, this.jobId, this.#seq);
    if (!stream.ok) return this.#refused(mode, stream);
    this.#cancelStream = () => stream.response.cancel();
    let ended: JobRunEvent | undefined;
    try {
      for await (const batch of runEvents(stream.response)) {
        if (this.#stopped) return { kind: "detached" };
        ended = (await this.#apply(batch)) ?? ended;
      }
    } catch (err) {
      if (this.#stopped) return { kind: "detached" };
      this.#deps.log.info(
        { job_id: this.jobId, machine_id: this.machineId, err: (err as Error).message },
        `lost the run of job ${this.jobId}; re-attaching when its machine is back`,
      );
      return { kind: "detached" };
    }
    if (!ended || ended.type !== "state") return { kind: "detached" };
    await forgetRun(this.#link, this.jobId).catch((err: unknown) =>
      this.#deps.log.warn(
        { job_id: this.jobId, err: (err as Error).message },
        "the agent could not forget an ended run",
      ),
    );
    return { kind: "ended", state: ended.state };
  }

  /** Stop following without touching the run (the gateway shuts down: another will re-attach). */
  detach(): void {
    this.#stopped = true;
    this.#cancelStream?.();
  }

  /** Tell the agent to stop the run (the job was cancelled); true once it took the order. */
  async cancel(): Promise<boolean> {
    if (this.#cancelSent) return true;
    try {
      await cancelRun(this.#link, this.jobId);
      this.#cancelSent = true;
    } catch (err) {
      this.#deps.log.info(
        { job_id: this.jobId, err: (err as Error).message },
        "the agent did not take a cancel yet; will retry",
      );
    }
    return this.#cancelSent;
  }

  async #assignment() {
    const spec = JSON.parse(this.#job.spec) as CreateJob;
    const inputs = [];
    for (const ref of spec.inputs ?? []) {
      const blob = await this.#deps.store.jobRuns.blob(this.#job.workspace_id, ref.sha256);
      // Checked at submission; kept since (blobs are never deleted under a job).
      inputs.push({ name: ref.name, sha256: ref.sha256, data_base64: blob?.data ?? "" });
    }
    return {
      job_id: this.jobId,
      attempt: this.#job.attempt,
      spec,
      gpus: JSON.parse(this.#job.gpus ?? "[]") as number[],
      inputs,
    };
  }

  async #refused(mode: "start" | "reattach", stream: Extract<RunStream, { ok: false }>): Promise<RunOutcome> {
    if (mode === "reattach") {
      return stream.status === 404 ? { kind: "unknown" } : { kind: "detached" };
    }
    const reason =
      stream.status === 0
        ? `machine ${this.machineId} could not be reached (${stream.error.message}); waiting for another`
        : `machine ${this.machineId} declined it: ${stream.error.message}`;
    await this.#move("QUEUED", { reason });
    return { kind: "declined", reason };
  }

  /** Apply a batch of events in order; returns the run's end event if the batch has one. */
  async #apply(batch: JobRunEvent[]): Promise<JobRunEvent | undefined> {
    let logs: NewJobLog[] = [];
    let end: JobRunEvent | undefined;
    const flush = async (seq: number) => {
      if (logs.length === 0 && seq === this.#seq) return;
      const lines = logs;
      logs = [];
      await this.#deps.store.transaction((tx) =>
        tx.jobRuns.appendLogs(this.jobId, lines, seq, this.#deps.logBound),
      );
      this.#seq = seq;
      this.#deps.feed.notify(this.jobId);
    };
    let last = this.#seq;
    for (const e of batch) {
      // Already kept (a re-attach resends from after the last event recorded, but be exact).
      if (e.seq <= this.#seq || e.seq <= last) continue;
      if (e.type === "log") {
        logs.push({ at: e.at, attempt: this.#job.attempt, stream: e.stream, line: e.line });
        last = e.seq;
        continue;
      }
      await flush(last);
      if (e.type === "output") await this.#output(e);
      else if (ENDS.has(e.state)) {
        await this.#end(e);
        end = e;
      } else {
        if (e.state === "RUNNING") this.#startedAt = e.at;
        await this.#move(e.state, { reason: e.reason ?? null });
      }
      last = e.seq;
      await flush(last);
    }
    await flush(last);
    return end;
  }

  async #output(e: Extract<JobRunEvent, { type: "output" }>): Promise<void> {
    const { store, log, maxOutputBytes } = this.#deps;
    try {
      const data = await fetchOutput(this.machineId, this.#link, this.jobId, e.name, e, maxOutputBytes);
      await store.transaction(async (tx) => {
        await tx.jobRuns.putBlob(this.#job.workspace_id, e.sha256, data, Date.now());
        await tx.jobRuns.putOutput({
          job_id: this.jobId,
          name: e.name,
          attempt: this.#job.attempt,
          sha256: e.sha256,
          size: data.length,
          at: e.at,
        });
      });
    } catch (err) {
      // The job's own log says which output is missing and why: that is where its owner looks.
      const line = `[b9] output ${e.name} was not kept: ${(err as Error).message}`;
      log.warn({ job_id: this.jobId, output: e.name, err: (err as Error).message }, line);
      await store.transaction((tx) =>
        tx.jobRuns.appendLogs(
          this.jobId,
          [{ at: Date.now(), attempt: this.#job.attempt, stream: "stderr", line }],
          this.#seq,
          this.#deps.logBound,
        ),
      );
    }
  }

  async #end(e: Extract<JobRunEvent, { type: "state" }>): Promise<void> {
    const reason = e.out_of_memory ? `${OUT_OF_MEMORY} ${e.reason ?? "killed"}` : (e.reason ?? null);
    await this.#move(e.state, { reason, exitCode: e.exit_code ?? null });
    const footprint = await jobFootprint(this.#deps.carbon, this.machineId, e.energy);
    await recordRunUsage(
      this.#deps.store,
      this.#job,
      this.machineId,
      this.#startedAt ?? e.at,
      e.at,
      footprint,
    );
    this.#deps.audit?.enqueue(
      jobRunEvent(this.#job, {
        machineId: this.machineId,
        country: this.#deps.carbon?.machine(this.machineId)?.country ?? null,
        state: e.state,
        exitCode: e.exit_code ?? null,
        startedAt: this.#startedAt ?? e.at,
        endedAt: e.at,
        footprint,
      }),
    );
    if (e.state === "FAILED" && retries(this.#job, retryCause(e))) {
      // A failed run is retried while the job's retries allow (the store checks): elsewhere if it can.
      await this.#move("QUEUED", {
        reason: `retry after FAILED on machine ${this.machineId}: ${reason ?? "failed"}`,
      });
    }
  }

  async #move(to: JobState, info: { reason: string | null; exitCode?: number | null }): Promise<void> {
    const moved = await this.#deps.store.transaction((tx) =>
      tx.jobs.transition(this.jobId, to, info, Date.now()),
    );
    if (moved) {
      this.#job = moved;
      this.#deps.onTransition?.(to);
      this.#deps.feed.notify(this.jobId);
    }
  }
}
