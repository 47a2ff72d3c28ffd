import { type Static, Type } from "typebox";
import { Hardware, JobRunners, Usage } from "./hardware.ts";
import { InferenceReport } from "./inference.ts";

export const MachineStatuses = [
  "READY",
  "BUSY",
  "UNHEALTHY",
  "OFFLINE",
  "CORDONED",
  "DRAINING",
  "DRAINED",
] as const;
export const MachineStatus = Type.Union([
  Type.Literal("READY"),
  Type.Literal("BUSY"),
  Type.Literal("UNHEALTHY"),
  Type.Literal("OFFLINE"),
  Type.Literal("CORDONED"),
  Type.Literal("DRAINING"),
  /** Drained: nothing in flight and nothing loaded; it takes no work until uncordoned. */
  Type.Literal("DRAINED"),
]);
export type MachineStatus = (typeof MachineStatuses)[number];

/** Machine ids are chosen by the agent (8+ hex by default) or the owner (--name); kept URL- and log-safe. */
export const MachineId = Type.String({ pattern: "^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" });
export const Name = Type.String({ pattern: "^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$" });
/** An ISO 3166-1 alpha-2 country code, upper case: "DE", "FR", "US". */
export const CountryCode = Type.String({ pattern: "^[A-Z]{2}$" });

export const JoinRequest = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 256 }),
    machine_id: MachineId,
    name: Type.Optional(Name),
    hostname: Type.String({ maxLength: 253 }),
    agent_version: Type.String({ maxLength: 64 }),
    /** The agent protocol it speaks (AGENT_PROTOCOL); absent from agents before it was sent, which speak 1. */
    protocol: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    hardware: Hardware,
    /** Where the agent's control API can be reached directly (LAN / Tailscale), if anywhere. */
    control_address: Type.Optional(Type.String({ maxLength: 300 })),
    /** Where the machine stands, as its owner declares it (b9agent init --country): refused when its join token binds another country, and never used to place work. */
    country: Type.Optional(CountryCode),
    /** The machine's current credential, when it joins again under its id: without it the id is refused. */
    credential: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

export const JoinResponse = Type.Object({
  machine_id: Type.String(),
  pool: Type.String(),
  /** The machine credential. Shown once; the gateway keeps only its hash. */
  credential: Type.String(),
  heartbeat_interval_seconds: Type.Number(),
});
export type JoinResponse = Static<typeof JoinResponse>;

export const MachineView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  pool: Type.String(),
  status: MachineStatus,
  hostname: Type.String(),
  agent_version: Type.String(),
  /** ISO 3166-1 alpha-2 code the operator set (join token or b9 machine set); placement and residency read only this. */
  country: Type.Union([Type.String(), Type.Null()]),
  /** What the agent declared of itself at join: shown, never used. */
  declared_country: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  /** Power usage effectiveness of its site, operator-set (1.0 by default). */
  pue: Type.Optional(Type.Number()),
  /** "channel" for agents on the agent channel, "keepalive" for the fork's HTTP keepalive agents. */
  connection: Type.Union([Type.Literal("channel"), Type.Literal("keepalive"), Type.Literal("none")]),
  hardware: Hardware,
  usage: Type.Union([Usage, Type.Null()]),
  /** Engines and served models as the agent last reported them. */
  inference: Type.Union([InferenceReport, Type.Null()]),
  cordoned: Type.Boolean(),
  draining: Type.Boolean(),
  running_jobs: Type.Integer(),
  /** The job runners its agent reported; absent until it did (or from an agent too old to say). */
  runners: Type.Optional(JobRunners),
  /** Requests this gateway has sent to the machine that have not ended yet (streams included). */
  in_flight: Type.Optional(Type.Integer()),
  /** While a drain is not done: what it still waits for, in words. */
  drain_waiting_for: Type.Optional(Type.String()),
  joined_at: Type.String({ format: "date-time" }),
  last_heartbeat_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
});
export type MachineView = Static<typeof MachineView>;

/** One page of machines in join order; `next` is the cursor for the following page (null at the end). */
export const MachineList = Type.Object({
  machines: Type.Array(MachineView),
  next: Type.Union([Type.String(), Type.Null()]),
});
export type MachineList = Static<typeof MachineList>;
