import { type Static, Type } from "typebox";

/**
 * The audit log's wire types. An event says who (actor) did what (action) to what (resource) in which
 * workspace, with what outcome, under which request id. Events form one hash chain per gateway
 * replica (`chain`, numbered by `seq` from 1): each event's `hash` covers its canonical JSON form (RFC
 * 8785) with the previous event's hash (`prev_hash`), so an edited, removed or inserted row breaks
 * the chain at that sequence number.
 */

export const AUDIT_OUTCOMES = ["ok", "refused", "failed"] as const;
export const AuditOutcome = Type.Union([Type.Literal("ok"), Type.Literal("refused"), Type.Literal("failed")]);
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** Who acted: an API key, a machine, a signed-in identity (issuer + subject), nobody known, or the gateway itself. */
export const AuditActor = Type.Object({
  type: Type.Union([
    Type.Literal("key"),
    Type.Literal("machine"),
    Type.Literal("identity"),
    Type.Literal("anonymous"),
    Type.Literal("system"),
  ]),
  /** The key id, machine id, or "issuer#subject"; null for anonymous and system. */
  id: Type.Union([Type.String(), Type.Null()]),
});
export type AuditActor = Static<typeof AuditActor>;

export const AuditEventView = Type.Object({
  chain: Type.String(),
  seq: Type.Integer({ minimum: 1 }),
  at: Type.String({ format: "date-time" }),
  actor: AuditActor,
  /** The workspace's name; null for events of no workspace (a machine joining, the operator's settings). */
  workspace: Type.Union([Type.String(), Type.Null()]),
  /** "noun.verb": key.create, machine.cordon, deployment.remove, auth.refused, inference.request, job.submit … */
  action: Type.String(),
  /** "kind:id", e.g. "key:k_1a2b", "machine:m_9f", "deployment:llama3.2:1b"; null when none. */
  resource: Type.Union([Type.String(), Type.Null()]),
  outcome: AuditOutcome,
  /** The id of the request that caused it, the same one the agent's and engine's logs carry. */
  request_id: Type.Union([Type.String(), Type.Null()]),
  /** What else is worth keeping; every secret replaced by a keyed HMAC ("hmac-sha256:…"), never in clear. */
  details: Type.Record(Type.String(), Type.Unknown()),
  prev_hash: Type.String(),
  hash: Type.String(),
});
export type AuditEventView = Static<typeof AuditEventView>;

export const AuditEventList = Type.Object({
  events: Type.Array(AuditEventView),
  /** Pass as `after` to read on (and to follow). */
  next: Type.Union([Type.String(), Type.Null()]),
});
export type AuditEventList = Static<typeof AuditEventList>;

/** `GET /api/v1/audit`'s filters; `after` is a list's `next`, `follow` waits for new events. */
export const AuditQuery = Type.Object(
  {
    since: Type.Optional(Type.String({ format: "date-time" })),
    until: Type.Optional(Type.String({ format: "date-time" })),
    /** A key id, machine id or identity (the actor's id). */
    actor: Type.Optional(Type.String({ maxLength: 200 })),
    action: Type.Optional(Type.String({ maxLength: 100 })),
    resource: Type.Optional(Type.String({ maxLength: 300 })),
    /** Another workspace's events, by name (the operator only). */
    workspace: Type.Optional(Type.String({ maxLength: 100 })),
    after: Type.Optional(Type.String({ maxLength: 20_000 })),
    /** 1 to 1000, default 100 (query strings are not coerced: a pattern, then Number()). */
    limit: Type.Optional(Type.String({ pattern: "^([1-9][0-9]{0,2}|1000)$" })),
    /** "true": wait (up to about 25 s) for an event after `after` when there is none yet. */
    follow: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

export const AuditCheckpointView = Type.Object({
  chain: Type.String(),
  seq: Type.Integer(),
  hash: Type.String(),
  at: Type.String({ format: "date-time" }),
  /** base64 Ed25519 signature over the RFC 8785 form of {chain, seq, hash, at (epoch ms)}. */
  signature: Type.String(),
  key_id: Type.String(),
});
export type AuditCheckpointView = Static<typeof AuditCheckpointView>;

export const ChainVerification = Type.Object({
  chain: Type.String(),
  events: Type.Integer(),
  first_seq: Type.Union([Type.Integer(), Type.Null()]),
  last_seq: Type.Union([Type.Integer(), Type.Null()]),
  /** The first sequence number where the chain is broken (edited, removed, inserted); null when whole. */
  broken_at: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  checkpoints: Type.Integer(),
  last_checkpoint: Type.Union([
    Type.Object({ seq: Type.Integer(), hash: Type.String(), at: Type.String(), key_id: Type.String() }),
    Type.Null(),
  ]),
});
export type ChainVerification = Static<typeof ChainVerification>;

export const AuditVerification = Type.Object({ ok: Type.Boolean(), chains: Type.Array(ChainVerification) });
export type AuditVerification = Static<typeof AuditVerification>;

/**
 * `b9 audit export --format jsonl`: one JSON object a line, `type` first: a header, the signing keys
 * (SPKI PEM), the events, the checkpoints and the prunes of the period, enough to verify offline.
 */
export type AuditExportLine =
  | { type: "export"; since: string | null; until: string | null; exported_at: string }
  | { type: "public_key"; key_id: string; public_key: string }
  | ({ type: "event" } & AuditEventView)
  | ({ type: "checkpoint" } & AuditCheckpointView)
  | { type: "prune"; chain: string; through_seq: number; at: string };
