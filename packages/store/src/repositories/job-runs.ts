import type { Insertable, Selectable } from "kysely";
import type { JobLogTable, JobOutputTable, JobUsageTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type JobLog = Selectable<JobLogTable>;
export type JobOutput = Selectable<JobOutputTable>;
export type JobUsage = Selectable<JobUsageTable>;
export type NewJobLog = Omit<JobLog, "job_id" | "seq">;

/** How many of a job's log lines are kept: the first `head` and the last `tail`. */
export interface LogBound {
  head: number;
  tail: number;
}

/**
 * What jobs' runs leave at the gateway: their log lines (bounded per job), the files they were given
 * and left (by sha256, per workspace), and what each run used.
 */
export class JobRunRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /**
   * Append lines to a job's log, numbered after those it has, and note the last agent event they came
   * with; lines beyond the bound are deleted from the middle, so the start and the end stay. Run it in
   * a transaction. Returns the job's line count after.
   */
  async appendLogs(
    jobId: string,
    lines: readonly NewJobLog[],
    agentSeq: number,
    bound: LogBound,
  ): Promise<number> {
    const job = await this.#db
      .selectFrom("jobs")
      .select(["log_lines"])
      .where("id", "=", jobId)
      .executeTakeFirstOrThrow();
    const first = job.log_lines + 1;
    const total = job.log_lines + lines.length;
    // Lines that would be deleted at once are never written.
    const rows = lines
      .map((l, i) => ({ ...l, job_id: jobId, seq: first + i }))
      .filter((r) => r.seq <= bound.head || r.seq > total - bound.tail);
    for (let i = 0; i < rows.length; i += 200)
      await this.#db
        .insertInto("job_logs")
        .values(rows.slice(i, i + 200))
        .execute();
    await this.#db
      .updateTable("jobs")
      .set({ log_lines: total, agent_seq: agentSeq })
      .where("id", "=", jobId)
      .execute();
    if (total > bound.head + bound.tail) {
      await this.#db
        .deleteFrom("job_logs")
        .where("job_id", "=", jobId)
        .where("seq", ">", bound.head)
        .where("seq", "<=", total - bound.tail)
        .execute();
    }
    return total;
  }

  /** A job's kept lines after line `after`, in order. */
  async logs(jobId: string, after: number, limit = 1000): Promise<JobLog[]> {
    return this.#db
      .selectFrom("job_logs")
      .selectAll()
      .where("job_id", "=", jobId)
      .where("seq", ">", after)
      .orderBy("seq")
      .limit(limit)
      .execute();
  }

  /** Keep bytes for a workspace by their sha256 (the same bytes again change nothing). */
  async putBlob(workspaceId: string, sha256: string, data: Buffer, now: number): Promise<void> {
    await this.#db
      .insertInto("job_blobs")
      .values({
        workspace_id: workspaceId,
        sha256,
        size: data.length,
        data: data.toString("base64"),
        created_at: now,
      })
      .onConflict((oc) => oc.columns(["workspace_id", "sha256"]).doNothing())
      .execute();
  }

  /** The workspace's bytes with that sha256, base64, or undefined. */
  async blob(workspaceId: string, sha256: string): Promise<{ size: number; data: string } | undefined> {
    const row = await this.#db
      .selectFrom("job_blobs")
      .select(["size", "data"])
      .where("workspace_id", "=", workspaceId)
      .where("sha256", "=", sha256)
      .executeTakeFirst();
    return row && { size: Number(row.size), data: row.data };
  }

  /** The sizes of those of `sha256s` the workspace has, by sha256. */
  async blobSizes(workspaceId: string, sha256s: readonly string[]): Promise<Map<string, number>> {
    if (sha256s.length === 0) return new Map();
    const rows = await this.#db
      .selectFrom("job_blobs")
      .select(["sha256", "size"])
      .where("workspace_id", "=", workspaceId)
      .where("sha256", "in", sha256s)
      .execute();
    return new Map(rows.map((r) => [r.sha256, Number(r.size)]));
  }

  /** Record an output of a run (a later attempt's file of the same name replaces it). */
  async putOutput(output: JobOutput): Promise<void> {
    await this.#db
      .insertInto("job_outputs")
      .values(output)
      .onConflict((oc) =>
        oc.columns(["job_id", "name"]).doUpdateSet({
          attempt: output.attempt,
          sha256: output.sha256,
          size: output.size,
          at: output.at,
        }),
      )
      .execute();
  }

  async outputs(jobId: string): Promise<JobOutput[]> {
    const rows = await this.#db
      .selectFrom("job_outputs")
      .selectAll()
      .where("job_id", "=", jobId)
      .orderBy("name")
      .execute();
    return rows.map((r) => ({ ...r, size: Number(r.size) }));
  }

  async recordUsage(usage: Insertable<JobUsageTable>): Promise<void> {
    await this.#db
      .insertInto("job_usage")
      .values(usage)
      .onConflict((oc) => oc.columns(["job_id", "attempt"]).doNothing())
      .execute();
  }

  /** GPU-seconds a workspace's runs that ended since `since` used. */
  async gpuSecondsSince(workspaceId: string, since: number): Promise<number> {
    const row = await this.#db
      .selectFrom("job_usage")
      .select((eb) => eb.fn.sum<number | string | null>("gpu_seconds").as("s"))
      .where("workspace_id", "=", workspaceId)
      .where("ended_at", ">=", since)
      .executeTakeFirst();
    return Number(row?.s ?? 0);
  }

  async usage(jobId: string): Promise<JobUsage[]> {
    return this.#db
      .selectFrom("job_usage")
      .selectAll()
      .where("job_id", "=", jobId)
      .orderBy("attempt")
      .execute();
  }
}
