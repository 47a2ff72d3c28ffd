import { type RawBuilder, type Selectable, sql } from "kysely";
import type { FootprintColumns, UsageTable } from "../schema.ts";
import type { Executor } from "./executor.ts";
import { RowInserter } from "./raw-insert.ts";

export type UsageRow = Selectable<UsageTable>;
/** A row as metering writes it: the footprint columns and the request id may be left out (null: unknown). */
export type NewUsageRow = Omit<UsageRow, keyof FootprintColumns | "request_id"> &
  Partial<Selectable<FootprintColumns>> & { request_id?: string | null };

/** A row without a footprint: every column named, so one multi-row INSERT fits rows with and without. */
export const NO_FOOTPRINT: Selectable<FootprintColumns> = {
  energy_wh: null,
  energy_method: null,
  energy_confidence: null,
  pue: null,
  grid_zone: null,
  grid_intensity: null,
  intensity_source: null,
  intensity_year: null,
  intensity_confidence: null,
  co2e_g: null,
  carbon_basis: null,
};

export type UsageGroupBy = "model" | "key" | "day" | "machine" | "workspace";

export interface UsageQuery {
  /** One workspace's requests; undefined: every workspace's (the operator's view). */
  workspaceId: string | undefined;
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
  /** Watt-hours of the requests whose energy was measured; null when none was. */
  energy_wh: number | null;
  /** gCO2e of the requests with a footprint; null when none had one. */
  co2e_g: number | null;
}

export type FootprintGroupBy = "model" | "key" | "machine" | "workspace";

export interface FootprintQuery {
  workspaceId: string | undefined;
  since: number;
  until: number;
  groupBy: FootprintGroupBy;
}

/** One group's footprint (the carbon report's row). */
export interface FootprintSummary {
  group: string;
  /** Answers, or runs of jobs. */
  count: number;
  /** Those with a measured energy (the others' energy is unknown, not zero). */
  measured: number;
  tokens: number;
  /** Tokens of the answers with a footprint: SCI per 1,000 tokens divides by these. */
  measured_tokens: number;
  energy_wh: number;
  co2e_g: number;
  /** co2e_g by the lower of its energy's and its grid figure's confidence. */
  co2e_by_confidence: { high: number; medium: number; low: number };
}

const DAY_MS = 86_400_000;
/** Rows per INSERT at most: their columns stay far below either dialect's limit on bound parameters. */
const INSERT_CHUNK = 512;

/** Every column of a usage row, in the order its INSERT names them. */
const USAGE_COLUMNS: readonly (keyof NewUsageRow & string)[] = [
  "id",
  "key_id",
  "workspace_id",
  "model",
  "machine_id",
  "status",
  "prompt_tokens",
  "completion_tokens",
  "latency_ms",
  "ttfb_ms",
  "started_at",
  "request_id",
  ...(Object.keys(NO_FOOTPRINT) as (keyof FootprintColumns & string)[]),
];

export class UsageRepository {
  readonly #db: Executor;
  readonly #insert: RowInserter<"usage", NewUsageRow>;
  constructor(db: Executor) {
    this.#db = db;
    this.#insert = new RowInserter(db, "usage", USAGE_COLUMNS, INSERT_CHUNK);
  }

  /**
   * Many rows in few statements (the gateway writes in batches, not one transaction per request),
   * their SQL kept: this is on every inference request's path. Columns left out are null.
   */
  insertMany(rows: readonly NewUsageRow[]): Promise<void> {
    return this.#insert.insertMany(rows);
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
  /** A workspace's requests per model and status in [since, until): how many failed, and how. */
  async statusCounts(q: {
    workspaceId: string;
    since: number;
    until: number;
  }): Promise<{ model: string; status: number; count: number }[]> {
    const rows = await this.#db
      .selectFrom("usage")
      .select(["model", "status", (eb) => eb.fn.countAll<number | string>().as("count")])
      .where("workspace_id", "=", q.workspaceId)
      .where("started_at", ">=", q.since)
      .where("started_at", "<", q.until)
      .groupBy(["model", "status"])
      .orderBy("model")
      .orderBy("status")
      .execute();
    return rows.map((r) => ({ model: r.model, status: r.status, count: Number(r.count) }));
  }

  async summarize(q: UsageQuery): Promise<UsageSummary[]> {
    const group =
      q.groupBy === "day"
        ? // Integer division in both dialects: the UTC day's first millisecond.
          sql<string>`(started_at / ${sql.lit(DAY_MS)}) * ${sql.lit(DAY_MS)}`
        : groupColumn(q.groupBy);
    // Nearest rank: ceil(p * n) with integer arithmetic, (p100 * n + 99) / 100.
    const { rows } = await sql<{
      g: string | number;
      requests: number | string;
      prompt_tokens: number | string | null;
      completion_tokens: number | string | null;
      errors: number | string | null;
      p50: number | string | null;
      p95: number | string | null;
      energy_wh: number | string | null;
      co2e_g: number | string | null;
    }>`
      WITH ranked AS (
        SELECT ${group} AS g, status, prompt_tokens, completion_tokens, latency_ms, energy_wh, co2e_g,
          row_number() OVER (PARTITION BY ${group} ORDER BY latency_ms) AS rn,
          count(*) OVER (PARTITION BY ${group}) AS n
        FROM usage
        WHERE ${inWorkspace(q.workspaceId)} AND started_at >= ${q.since} AND started_at < ${q.until}
      )
      SELECT g,
        count(*) AS requests,
        sum(prompt_tokens) AS prompt_tokens,
        sum(completion_tokens) AS completion_tokens,
        sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
        max(CASE WHEN rn = (50 * n + 99) / 100 THEN latency_ms END) AS p50,
        max(CASE WHEN rn = (95 * n + 99) / 100 THEN latency_ms END) AS p95,
        sum(energy_wh) AS energy_wh,
        sum(co2e_g) AS co2e_g
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
      // SQL's sum over no figure is NULL: unknown stays unknown.
      energy_wh: r.energy_wh === null ? null : Number(r.energy_wh),
      co2e_g: r.co2e_g === null ? null : Number(r.co2e_g),
    }));
  }

  /** The answers' footprints per group in [since, until) (the carbon report's rows). */
  async footprints(q: FootprintQuery): Promise<FootprintSummary[]> {
    const { rows } = await sql<FootprintSql>`
      SELECT ${groupColumn(q.groupBy)} AS g, count(*) AS n,
        sum(CASE WHEN energy_wh IS NULL THEN 0 ELSE 1 END) AS measured,
        sum(prompt_tokens + completion_tokens) AS tokens,
        sum(CASE WHEN co2e_g IS NULL THEN 0 ELSE prompt_tokens + completion_tokens END) AS measured_tokens,
        ${footprintSums}
      FROM usage
      WHERE ${inWorkspace(q.workspaceId)} AND started_at >= ${q.since} AND started_at < ${q.until}
      GROUP BY g
      ORDER BY g
    `.execute(this.#db);
    return rows.map(footprintRow);
  }

  /**
   * The footprints of jobs' runs that ended in [since, until), per machine or workspace (a job has no
   * model or key: grouped by those, all runs are one group, "jobs").
   */
  async jobFootprints(q: FootprintQuery): Promise<FootprintSummary[]> {
    const group =
      q.groupBy === "machine"
        ? sql<string>`machine_id`
        : q.groupBy === "workspace"
          ? sql<string>`workspace_id`
          : sql<string>`'jobs'`;
    const { rows } = await sql<FootprintSql>`
      SELECT ${group} AS g, count(*) AS n,
        sum(CASE WHEN energy_wh IS NULL THEN 0 ELSE 1 END) AS measured,
        0 AS tokens, 0 AS measured_tokens,
        ${footprintSums}
      FROM job_usage
      WHERE ${inWorkspace(q.workspaceId)} AND ended_at >= ${q.since} AND ended_at < ${q.until}
      GROUP BY g
      ORDER BY g
    `.execute(this.#db);
    return rows.map(footprintRow);
  }
}

interface FootprintSql {
  g: string;
  n: number | string;
  measured: number | string | null;
  tokens: number | string | null;
  measured_tokens: number | string | null;
  energy_wh: number | string | null;
  co2e_g: number | string | null;
  co2e_high: number | string | null;
  co2e_medium: number | string | null;
  co2e_low: number | string | null;
}

/** A row's confidence is the lower of its energy's and its grid figure's. */
const footprintSums = sql`
  sum(energy_wh) AS energy_wh,
  sum(co2e_g) AS co2e_g,
  sum(CASE WHEN energy_confidence = 'high' AND intensity_confidence = 'high' THEN co2e_g END) AS co2e_high,
  sum(CASE WHEN energy_confidence <> 'low' AND intensity_confidence <> 'low'
    AND NOT (energy_confidence = 'high' AND intensity_confidence = 'high') THEN co2e_g END) AS co2e_medium,
  sum(CASE WHEN energy_confidence = 'low' OR intensity_confidence = 'low' THEN co2e_g END) AS co2e_low`;

function footprintRow(r: FootprintSql): FootprintSummary {
  const num = (v: number | string | null) => Number(v ?? 0);
  return {
    group: String(r.g),
    count: num(r.n),
    measured: num(r.measured),
    tokens: num(r.tokens),
    measured_tokens: num(r.measured_tokens),
    energy_wh: num(r.energy_wh),
    co2e_g: num(r.co2e_g),
    co2e_by_confidence: { high: num(r.co2e_high), medium: num(r.co2e_medium), low: num(r.co2e_low) },
  };
}

function groupColumn(by: FootprintGroupBy): RawBuilder<string> {
  if (by === "model") return sql<string>`model`;
  if (by === "key") return sql<string>`key_id`;
  if (by === "workspace") return sql<string>`workspace_id`;
  return sql<string>`coalesce(machine_id, '')`;
}

function inWorkspace(id: string | undefined): RawBuilder<boolean> {
  return id === undefined ? sql<boolean>`1 = 1` : sql<boolean>`workspace_id = ${id}`;
}
