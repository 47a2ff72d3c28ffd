import { type Selectable, sql } from "kysely";
import type { UsageTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type UsageRow = Selectable<UsageTable>;

export type UsageGroupBy = "model" | "key" | "day" | "machine";

export interface UsageQuery {
  workspaceId: string;
  /** Milliseconds since the epoch: rows with since <= started_at < until. */
  since: number;
  until: number;
  groupBy: UsageGroupBy;
}

/** One group's totals. `group` is the model, the key id, or the day's start (ms, UTC) as a string. */
export interface UsageSummary {
  group: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Requests answered with a status of 400 or more (499: the client left; 502: cut off). */
  errors: number;
  /** Nearest-rank percentiles of latency_ms. */
  p50_latency_ms: number;
  p95_latency_ms: number;
}

const DAY_MS = 86_400_000;
/** Rows per INSERT: 11 columns each stay far below either dialect's limit on bound parameters. */
const INSERT_CHUNK = 500;

export class UsageRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /** Many rows in few statements (the gateway writes in batches, not one transaction per request). */
  async insertMany(rows: readonly UsageRow[]): Promise<void> {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await this.#db
        .insertInto("usage")
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
  }

  /**
   * Remove up to `limit` rows of requests started before `before` (ms), every workspace's; how many
   * went. A bounded batch: on SQLite a delete blocks the process while it runs.
   */
  async removeBefore(before: number, limit: number): Promise<number> {
    const res = await this.#db
      .deleteFrom("usage")
      .where("id", "in", (qb) =>
        qb.selectFrom("usage").select("id").where("started_at", "<", before).limit(limit),
      )
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /**
   * Totals per group of one workspace's requests in [since, until), ordered by group. Percentiles are
   * computed in the database with window functions (both dialects have them), so no rows travel.
   */
  async summarize(q: UsageQuery): Promise<UsageSummary[]> {
    const group =
      q.groupBy === "model"
        ? sql<string>`model`
        : q.groupBy === "key"
          ? sql<string>`key_id`
          : q.groupBy === "machine"
            ? sql<string>`coalesce(machine_id, '')`
            : // Integer division in both dialects: the UTC day's first millisecond.
              sql<string>`(started_at / ${sql.lit(DAY_MS)}) * ${sql.lit(DAY_MS)}`;
    // Nearest rank: ceil(p * n) with integer arithmetic, (p100 * n + 99) / 100.
    const { rows } = await sql<{
      g: string | number;
      requests: number | string;
      prompt_tokens: number | string | null;
      completion_tokens: number | string | null;
      errors: number | string | null;
      p50: number | string | null;
      p95: number | string | null;
    }>`
      WITH ranked AS (
        SELECT ${group} AS g, status, prompt_tokens, completion_tokens, latency_ms,
          row_number() OVER (PARTITION BY ${group} ORDER BY latency_ms) AS rn,
          count(*) OVER (PARTITION BY ${group}) AS n
        FROM usage
        WHERE workspace_id = ${q.workspaceId} AND started_at >= ${q.since} AND started_at < ${q.until}
      )
      SELECT g,
        count(*) AS requests,
        sum(prompt_tokens) AS prompt_tokens,
        sum(completion_tokens) AS completion_tokens,
        sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
        max(CASE WHEN rn = (50 * n + 99) / 100 THEN latency_ms END) AS p50,
        max(CASE WHEN rn = (95 * n + 99) / 100 THEN latency_ms END) AS p95
      FROM ranked
      GROUP BY g
      ORDER BY g
    `.execute(this.#db);
    // PostgreSQL answers sums of integers as bigint, which the pool parses; numeric would be a string.
    const num = (v: number | string | null) => Number(v ?? 0);
    return rows.map((r) => ({
      group: String(r.g),
      requests: num(r.requests),
      prompt_tokens: num(r.prompt_tokens),
      completion_tokens: num(r.completion_tokens),
      errors: num(r.errors),
      p50_latency_ms: num(r.p50),
      p95_latency_ms: num(r.p95),
    }));
  }
}
