import { type Static, Type } from "typebox";

export const UsageGroupBy = Type.Union([
  Type.Literal("model"),
  Type.Literal("key"),
  Type.Literal("day"),
  Type.Literal("machine"),
  /** Every workspace's requests, per workspace: for the pool's operator. */
  Type.Literal("workspace"),
]);
export type UsageGroupBy = Static<typeof UsageGroupBy>;

/** `GET /api/v1/usage` query: the caller's workspace's inference requests in [since, until). */
export const UsageQuery = Type.Object(
  {
    /** ISO 8601 time or date ("2026-11-28T00:00:00Z", "2026-11-28"); default 24 hours before `until`. */
    since: Type.Optional(Type.String({ maxLength: 64 })),
    /** ISO 8601 time or date; default now. */
    until: Type.Optional(Type.String({ maxLength: 64 })),
    /** Default "model". */
    group_by: Type.Optional(UsageGroupBy),
    /** Another workspace's usage, by name: for a key of the default workspace (the pool's operator). */
    workspace: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type UsageQuery = Static<typeof UsageQuery>;

export const UsageGroup = Type.Object({
  /**
   * The model's name, the key's id, the UTC day ("2026-11-28"), or the machine's id ("" for requests
   * no machine answered: unknown model, rate limited, no capacity).
   */
  group: Type.String(),
  /** The key's name when grouped by key (null if the key is gone); absent otherwise. */
  key_name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  /** The machine's name when grouped by machine (null if none answered or it was removed); absent otherwise. */
  machine_name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  requests: Type.Integer(),
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  /** Requests that ended with a status of 400 or more, rate-limited ones included. */
  errors: Type.Integer(),
  p50_latency_ms: Type.Integer(),
  p95_latency_ms: Type.Integer(),
  /**
   * Watt-hours the machines measured for these requests (before PUE); null when none was measured
   * (always sent by this gateway; optional for older ones).
   */
  energy_wh: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  /** gCO2e of these requests (location-based); null when none had a footprint. */
  co2e_g: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  /** The workspace's name when grouped by workspace; absent otherwise. */
  workspace_name: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});
export type UsageGroup = Static<typeof UsageGroup>;

export const UsageReport = Type.Object({
  since: Type.String({ format: "date-time" }),
  until: Type.String({ format: "date-time" }),
  group_by: UsageGroupBy,
  /** The workspace the report is of. */
  workspace: Type.String(),
  groups: Type.Array(UsageGroup),
});
export type UsageReport = Static<typeof UsageReport>;

export const CarbonReportBy = Type.Union([
  Type.Literal("model"),
  Type.Literal("key"),
  Type.Literal("machine"),
  Type.Literal("workspace"),
]);
export type CarbonReportBy = Static<typeof CarbonReportBy>;

/** `GET /api/v1/carbon/report` query. */
export const CarbonReportQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ maxLength: 64 })),
    until: Type.Optional(Type.String({ maxLength: 64 })),
    /** Default "model"; "workspace" (every workspace) is for the pool's operator. */
    by: Type.Optional(CarbonReportBy),
    workspace: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type CarbonReportQuery = Static<typeof CarbonReportQuery>;

/** gCO2e by the confidence of its figures (the lower of the energy's and the grid's). */
const ByConfidence = Type.Object({ high: Type.Number(), medium: Type.Number(), low: Type.Number() });

export const CarbonRow = Type.Object({
  /** The model, the key's id, the machine's id or the workspace's id; "jobs" for jobs grouped by model or key. */
  group: Type.String(),
  /** The key's, machine's or workspace's name, when there is one. */
  name: Type.Union([Type.String(), Type.Null()]),
  /** "answers" (inference requests) or "jobs" (runs of jobs). */
  kind: Type.Union([Type.Literal("answers"), Type.Literal("jobs")]),
  count: Type.Integer(),
  /** Those whose energy was measured (the others are left out of the sums, not counted as zero). */
  measured: Type.Integer(),
  tokens: Type.Integer(),
  /** Tokens of the answers with a footprint (what SCI per 1,000 tokens divides by). */
  measured_tokens: Type.Integer(),
  energy_wh: Type.Number(),
  co2e_g: Type.Number(),
  /** SCI = (E × I + M) / R with M = 0 (embodied emissions not counted): per 1,000 tokens of answers with a footprint. */
  sci_g_per_1k_tokens: Type.Union([Type.Number(), Type.Null()]),
  /** Per measured run, for jobs. */
  sci_g_per_job: Type.Union([Type.Number(), Type.Null()]),
  co2e_by_confidence: ByConfidence,
});
export type CarbonRow = Static<typeof CarbonRow>;

export const CarbonReport = Type.Object({
  since: Type.String({ format: "date-time" }),
  until: Type.String({ format: "date-time" }),
  by: CarbonReportBy,
  /** The workspace reported on; null for every workspace (by workspace). */
  workspace: Type.Union([Type.String(), Type.Null()]),
  basis: Type.Literal("location"),
  rows: Type.Array(CarbonRow),
  /** The sums of the rows. */
  totals: Type.Object({
    answers: Type.Integer(),
    jobs: Type.Integer(),
    energy_wh: Type.Number(),
    co2e_g: Type.Number(),
    sci_g_per_1k_tokens: Type.Union([Type.Number(), Type.Null()]),
    sci_g_per_job: Type.Union([Type.Number(), Type.Null()]),
    co2e_by_confidence: ByConfidence,
    /** Shares of co2e_g (0 to 1) each confidence level covers. */
    coverage: ByConfidence,
  }),
});
export type CarbonReport = Static<typeof CarbonReport>;
