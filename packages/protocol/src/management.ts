import { type Static, Type } from "typebox";
import { CountryCode, Name } from "./machine.ts";

export const Scopes = ["admin", "inference", "read", "jobs"] as const;
export const Scope = Type.Union([
  Type.Literal("admin"),
  Type.Literal("inference"),
  Type.Literal("read"),
  Type.Literal("jobs"),
]);
export type Scope = (typeof Scopes)[number];

/** Join tokens: `b9j_…`. API keys: `b9_…`. Machine credentials: `b9m_…`. */
export const TOKEN_PREFIX = { join: "b9j_", apiKey: "b9_", machine: "b9m_" } as const;

/** Residency in a request: "eu", a list of countries, or both (the countries of the list in the EU); null clears it. */
const ResidencyRegion = Type.Union([Type.Literal("eu"), Type.Null()]);
const ResidencyCountries = Type.Array(CountryCode, { maxItems: 64, uniqueItems: true });
/** Residency in a view: where a workspace's or key's work may run; both empty/null for anywhere. */
const ResidencyView = {
  region: Type.Optional(Type.Union([Type.Literal("eu"), Type.Null()])),
  countries: Type.Optional(Type.Array(Type.String())),
};

/** Operator-set facts of a machine: its country (what placement and residency read) and its site's PUE. */
export const SetMachine = Type.Object(
  {
    country: Type.Optional(Type.Union([CountryCode, Type.Null()])),
    /** Power usage effectiveness of the machine's site: 1.0 (a home machine) to 3.0. */
    pue: Type.Optional(Type.Number()),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type SetMachine = Static<typeof SetMachine>;

/** Where a workspace's or key's work may run; a field left out stays as it is. */
export const SetResidency = Type.Object(
  { region: Type.Optional(ResidencyRegion), countries: Type.Optional(ResidencyCountries) },
  { additionalProperties: false, minProperties: 1 },
);
export type SetResidency = Static<typeof SetResidency>;

export const CreateJoinToken = Type.Object(
  {
    pool: Type.Optional(Name),
    /** The country of every machine that joins with it (ISO 3166-1 alpha-2): set by the operator, not the machine. */
    country: Type.Optional(CountryCode),
    /** Seconds until the token stops working. Default one hour, at most 30 days. */
    ttl_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 24 * 3600 })),
    /** How many machines may join with it. Default 1. */
    uses: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type CreateJoinToken = Static<typeof CreateJoinToken>;

export const JoinTokenView = Type.Object({
  id: Type.String(),
  pool: Type.String(),
  description: Type.String(),
  expires_at: Type.String({ format: "date-time" }),
  uses_total: Type.Integer(),
  uses_left: Type.Integer(),
  revoked: Type.Boolean(),
  created_at: Type.String({ format: "date-time" }),
  /** The country it binds to the machines joining with it; null for none. */
  country: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  /** Only in the answer to create; never stored. */
  token: Type.Optional(Type.String()),
});
export type JoinTokenView = Static<typeof JoinTokenView>;
export const JoinTokenList = Type.Object({ tokens: Type.Array(JoinTokenView) });
export type JoinTokenList = Static<typeof JoinTokenList>;

export const CreateApiKey = Type.Object(
  {
    name: Name,
    scopes: Type.Array(Scope, { minItems: 1, maxItems: 4, uniqueItems: true }),
    workspace: Type.Optional(Name),
    /** Requests per minute this key may make; absent or null for no limit. */
    rpm_limit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()])),
    /** Tokens (prompt + completion) per minute this key may use; absent or null for no limit. */
    tpm_limit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000_000 }), Type.Null()])),
    /** Residency within its workspace's (never wider). */
    region: Type.Optional(ResidencyRegion),
    countries: Type.Optional(ResidencyCountries),
  },
  { additionalProperties: false },
);
export type CreateApiKey = Static<typeof CreateApiKey>;

/** New limits for an existing key: a number, or null for none; a field left out stays as it is. */
export const SetApiKeyLimits = Type.Object(
  {
    rpm_limit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()])),
    tpm_limit: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000_000 }), Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type SetApiKeyLimits = Static<typeof SetApiKeyLimits>;

export const ApiKeyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  workspace: Type.String(),
  scopes: Type.Array(Scope),
  /** First characters of the key, enough to recognise it. */
  prefix: Type.String(),
  revoked: Type.Boolean(),
  created_at: Type.String({ format: "date-time" }),
  last_used_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  /** Requests per minute allowed; null for no limit. */
  rpm_limit: Type.Union([Type.Integer(), Type.Null()]),
  /** Tokens per minute allowed; null for no limit. */
  tpm_limit: Type.Union([Type.Integer(), Type.Null()]),
  ...ResidencyView,
  key: Type.Optional(Type.String()),
});
export type ApiKeyView = Static<typeof ApiKeyView>;
export const ApiKeyList = Type.Object({ keys: Type.Array(ApiKeyView) });
export type ApiKeyList = Static<typeof ApiKeyList>;

export const CreatePool = Type.Object(
  { name: Name, description: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);
export type CreatePool = Static<typeof CreatePool>;
export const PoolView = Type.Object({
  name: Type.String(),
  description: Type.String(),
  machines: Type.Integer(),
  created_at: Type.String({ format: "date-time" }),
});
export type PoolView = Static<typeof PoolView>;
export const PoolList = Type.Object({ pools: Type.Array(PoolView) });
export type PoolList = Static<typeof PoolList>;

const RpmLimit = Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()]);
const TpmLimit = Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000_000 }), Type.Null()]);
const MaxJobs = Type.Union([Type.Integer({ minimum: 1, maximum: 1_000_000 }), Type.Null()]);
const GpuHours = Type.Union([Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000 }), Type.Null()]);

/** Workspaces hold deployments, API keys and usage; the pool's machines serve them all. */
export const CreateWorkspace = Type.Object(
  {
    name: Name,
    /** Requests per minute for all the workspace's keys together; absent or null for no limit. */
    rpm_limit: Type.Optional(RpmLimit),
    /** Tokens per minute for all its keys together; absent or null for no limit. */
    tpm_limit: Type.Optional(TpmLimit),
    /** Jobs on machines at once (the rest wait queued); absent or null for no limit. */
    max_jobs: Type.Optional(MaxJobs),
    /** GPU-hours its jobs may use in any 24 hours (GPU jobs wait past it); absent or null for no limit. */
    gpu_hours_per_day: Type.Optional(GpuHours),
    /** Where its work may run: every deployment, job, pull and request, checked per request. */
    region: Type.Optional(ResidencyRegion),
    countries: Type.Optional(ResidencyCountries),
  },
  { additionalProperties: false },
);
export type CreateWorkspace = Static<typeof CreateWorkspace>;
/** New limits for a workspace (a number, or null for none); a field left out stays as it is. */
export const SetWorkspaceLimits = Type.Object(
  {
    rpm_limit: Type.Optional(RpmLimit),
    tpm_limit: Type.Optional(TpmLimit),
    max_jobs: Type.Optional(MaxJobs),
    gpu_hours_per_day: Type.Optional(GpuHours),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type SetWorkspaceLimits = Static<typeof SetWorkspaceLimits>;
export const WorkspaceView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  /** The bootstrap workspace (`default`): its admins run the pool (machines, join tokens, pools, workspaces). */
  operator: Type.Boolean(),
  /** Per-minute limits for all its keys together (null: none), set by the operator. */
  rpm_limit: Type.Union([Type.Integer(), Type.Null()]),
  tpm_limit: Type.Union([Type.Integer(), Type.Null()]),
  /** Jobs on machines at once (null: no limit). */
  max_jobs: Type.Union([Type.Integer(), Type.Null()]),
  /** GPU-hours its jobs may use in any 24 hours (null: no limit). */
  gpu_hours_per_day: Type.Union([Type.Number(), Type.Null()]),
  ...ResidencyView,
  /** Its inference audit events keep the prompt and the answer (a GDPR choice of the workspace); off by default. */
  audit_content: Type.Boolean(),
  /** Since when they do; null while off. */
  audit_content_since: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  created_at: Type.String({ format: "date-time" }),
});
export type WorkspaceView = Static<typeof WorkspaceView>;
/** A workspace's settings, changed by its own admins (or the operator). */
export const SetWorkspaceSettings = Type.Object(
  {
    /** Keep prompts and answers in its inference audit events (personal data: its GDPR choice). */
    audit_content: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type SetWorkspaceSettings = Static<typeof SetWorkspaceSettings>;
export const WorkspaceList = Type.Object({ workspaces: Type.Array(WorkspaceView) });
export type WorkspaceList = Static<typeof WorkspaceList>;
/** A workspace removed, with what went with it (its usage rows stay until the usage retention). */
export const WorkspaceRemoved = Type.Object({
  name: Type.String(),
  deployments_removed: Type.Integer(),
  keys_removed: Type.Integer(),
});
export type WorkspaceRemoved = Static<typeof WorkspaceRemoved>;

export const Health = Type.Object({ status: Type.Literal("ok"), version: Type.String() });
export type Health = Static<typeof Health>;
