import { type Static, Type } from "typebox";
import { GpuRequirement } from "./deployment.ts";
import { CountryCode, Name } from "./machine.ts";

/**
 * A job's life: QUEUED until a gateway assigns it to a machine, PREPARING while its environment is
 * built there, RUNNING, then one end. LOST (its machine went away) and FAILED may go back to QUEUED
 * when the job's retries allow; a retried job keeps its place in the queue (its priority and the time
 * it was first queued), so retries never overtake jobs queued before them.
 */
export const JOB_STATES = [
  "QUEUED",
  "ASSIGNED",
  "PREPARING",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
  "CANCELLED",
  "LOST",
] as const;
export const JobState = Type.Union(JOB_STATES.map((s) => Type.Literal(s)));
export type JobState = (typeof JOB_STATES)[number];

/** The states a job may enter each state from: a transition not listed here is refused. */
export const JOB_ENTERED_FROM: Readonly<Record<JobState, readonly JobState[]>> = {
  // From ASSIGNED: the machine declined it, or was lost before it started; a retry after LOST or FAILED.
  QUEUED: ["ASSIGNED", "LOST", "FAILED"],
  ASSIGNED: ["QUEUED"],
  PREPARING: ["ASSIGNED"],
  RUNNING: ["ASSIGNED", "PREPARING"],
  SUCCEEDED: ["RUNNING"],
  FAILED: ["ASSIGNED", "PREPARING", "RUNNING"],
  TIMED_OUT: ["PREPARING", "RUNNING"],
  CANCELLED: ["QUEUED", "ASSIGNED", "PREPARING", "RUNNING"],
  LOST: ["ASSIGNED", "PREPARING", "RUNNING"],
};

/** States a job leaves only by a retry (LOST, FAILED) or never. */
export const JOB_ENDED: ReadonlySet<JobState> = new Set([
  "SUCCEEDED",
  "FAILED",
  "TIMED_OUT",
  "CANCELLED",
  "LOST",
]);

/** Job priorities: higher runs first; equal priorities run in the order they were queued. */
export const JobPriority = Type.Integer({ minimum: -1000, maximum: 1000 });
export type JobPriority = Static<typeof JobPriority>;

/** What a job needs of its machine. Absent: CPU only, any memory. */
export const JobResources = Type.Object(
  {
    /** Default "none": a CPU job. "any": a GPU of any vendor. */
    gpu: Type.Optional(GpuRequirement),
    gpu_count: Type.Optional(Type.Integer({ minimum: 1, maximum: 16 })),
    min_vram_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
    cpu: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1024 })),
    memory_bytes: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
export type JobResources = Static<typeof JobResources>;

/** A Python environment for the job, built once per spec with uv and reused. */
export const JobEnvironment = Type.Object(
  {
    python: Type.Optional(Type.String({ pattern: "^3\\.[0-9]{1,2}$" })),
    packages: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 256 })),
    /** A requirements.txt's text. */
    requirements: Type.Optional(Type.String({ maxLength: 65_536 })),
  },
  { additionalProperties: false },
);
export type JobEnvironment = Static<typeof JobEnvironment>;

/** A job to run: a command (argv, never a shell line) with its environment, needs and limits. */
export const CreateJob = Type.Object(
  {
    command: Type.Array(Type.String({ minLength: 1, maxLength: 8192 }), { minItems: 1, maxItems: 1024 }),
    env: Type.Optional(
      Type.Record(
        Type.String({ pattern: "^[A-Za-z_][A-Za-z0-9_]{0,127}$" }),
        Type.String({ maxLength: 32_768 }),
        {
          maxProperties: 256,
          // A name outside the pattern is refused, not let through as an "additional" property.
          additionalProperties: false,
        },
      ),
    ),
    environment: Type.Optional(JobEnvironment),
    resources: Type.Optional(JobResources),
    /** Default "external". */
    pool: Type.Optional(Name),
    countries: Type.Optional(Type.Array(CountryCode, { minItems: 1, maxItems: 64, uniqueItems: true })),
    region: Type.Optional(Type.Literal("eu")),
    /** Default 3600: the job is stopped (TIMED_OUT) after this long running. */
    timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 })),
    /** Runs after the first, when it ends LOST or FAILED; default 0. */
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    /** Default 0. */
    priority: Type.Optional(JobPriority),
    /** The same key in the same workspace returns the job made first instead of a second one. */
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  },
  { additionalProperties: false },
);
export type CreateJob = Static<typeof CreateJob>;

export const JobEventView = Type.Object({
  at: Type.String({ format: "date-time" }),
  state: JobState,
  reason: Type.Union([Type.String(), Type.Null()]),
  machine_id: Type.Union([Type.String(), Type.Null()]),
});
export type JobEventView = Static<typeof JobEventView>;

export const JobView = Type.Object({
  id: Type.String(),
  workspace: Type.String(),
  state: JobState,
  reason: Type.Union([Type.String(), Type.Null()]),
  spec: CreateJob,
  priority: Type.Integer(),
  attempt: Type.Integer(),
  max_retries: Type.Integer(),
  machine_id: Type.Union([Type.String(), Type.Null()]),
  exit_code: Type.Union([Type.Integer(), Type.Null()]),
  created_at: Type.String({ format: "date-time" }),
  started_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  finished_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  /** Its transitions, oldest first (on a single job's view). */
  events: Type.Optional(Type.Array(JobEventView)),
});
export type JobView = Static<typeof JobView>;
export const JobList = Type.Object({
  jobs: Type.Array(JobView),
  next: Type.Union([Type.String(), Type.Null()]),
});
export type JobList = Static<typeof JobList>;
