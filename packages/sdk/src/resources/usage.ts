import type { CarbonReport, CarbonReportBy, UsageGroupBy, UsageReport } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

export interface UsageFilter {
  /** From this time (a Date or ISO 8601 text); default 24 hours before `until`. */
  since?: Date | string;
  /** Up to this time; default now. */
  until?: Date | string;
  /** Default "model". */
  group_by?: UsageGroupBy;
  /** Another workspace, by name (a key of the default workspace only). */
  workspace?: string;
}

export interface CarbonFilter {
  since?: Date | string;
  until?: Date | string;
  /** Default "model"; "workspace" (every workspace) for the pool's operator. */
  by?: CarbonReportBy;
  workspace?: string;
}

/** Inference usage of the caller's workspace, as the gateway metered it. Needs scope read (or admin). */
export class Usage {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** Requests, tokens, errors and latency percentiles per model, key, UTC day or machine. */
  async get(filter: UsageFilter = {}, options?: RequestOptions): Promise<UsageReport> {
    const iso = (t: Date | string | undefined) => (t instanceof Date ? t.toISOString() : t);
    return this.#http.get(
      "/api/v1/usage",
      {
        since: iso(filter.since),
        until: iso(filter.until),
        group_by: filter.group_by,
        workspace: filter.workspace,
      },
      options,
    );
  }

  /**
   * The footprint of answers and jobs (energy, gCO2e, SCI per 1,000 tokens and per job, and the share
   * each confidence level covers) per model, key, machine or workspace; the totals sum the rows.
   */
  async carbon(filter: CarbonFilter = {}, options?: RequestOptions): Promise<CarbonReport> {
    const iso = (t: Date | string | undefined) => (t instanceof Date ? t.toISOString() : t);
    return this.#http.get(
      "/api/v1/carbon/report",
      { since: iso(filter.since), until: iso(filter.until), by: filter.by, workspace: filter.workspace },
      options,
    );
  }
}
