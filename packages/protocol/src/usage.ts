import { type Static, Type } from "typebox";

export const UsageGroupBy = Type.Union([
  Type.Literal("model"),
  Type.Literal("key"),
  Type.Literal("day"),
  Type.Literal("machine"),
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
