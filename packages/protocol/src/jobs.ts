import { type Static, Type } from "typebox";
import { GpuRequirement } from "./deployment.ts";
import { EnergyReading } from "./energy.ts";
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

/** At most this many bytes of inputs per job, all files together (they travel with the assignment). */
export const MAX_JOB_INPUT_BYTES = 64 * 1024 * 1024;
/** A log line longer than this is cut, with a note of how much was cut. */
export const MAX_JOB_LOG_LINE_BYTES = 64 * 1024;

/** A path inside the job's directory: relative, no "..", no empty or hidden-traversal parts. */
export const JobFileName = Type.String({
  minLength: 1,
  maxLength: 512,
  pattern: "^(?!/)(?!.*(^|/)\\.\\.?(/|$))[A-Za-z0-9._/ -]+$",
});

export const JobInputRef = Type.Object(
  { name: JobFileName, sha256: Type.String({ pattern: "^[a-f0-9]{64}$" }) },
  { additionalProperties: false },
);
export type JobInputRef = Static<typeof JobInputRef>;

export const JOB_RETRY_CAUSES = ["lost", "out_of_memory", "exit", "error"] as const;
export const JobRetryCause = Type.Union([
  Type.Literal("lost"),
  Type.Literal("out_of_memory"),
  Type.Literal("exit"),
  Type.Literal("error"),
]);
export type JobRetryCause = (typeof JOB_RETRY_CAUSES)[number];

/** Why a run ended badly, as `retry_on` names it: from its end event's exit code and memory flag. */
export function retryCause(end: { out_of_memory?: boolean; exit_code?: number | null }): JobRetryCause {
  if (end.out_of_memory) return "out_of_memory";
  return typeof end.exit_code === "number" ? "exit" : "error";
}

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
    /** "low-carbon": among the machines that fit, the one whose grid emits least per kWh (× its PUE). */
    prefer: Type.Optional(Type.Literal("low-carbon")),
    /** Default 3600: the job is stopped (TIMED_OUT) after this long running. */
    timeout_seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 })),
    /** Runs after the first, when it ends LOST or FAILED (as `retry_on` says); default 0. */
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    /**
     * Which ends are retried: "lost" (its machine went away), "out_of_memory" (over its memory
     * limit), "exit" (a non-zero exit code), "error" (it could not start or its machine stopped it).
     * Default: all four.
     */
    retry_on: Type.Optional(Type.Array(JobRetryCause, { minItems: 1, maxItems: 4, uniqueItems: true })),
    /** Default 0. */
    priority: Type.Optional(JobPriority),
    /**
     * Files placed in the job's directory before it starts: each uploaded first (POST
     * /api/v1/jobs/inputs → sha256), at most MAX_JOB_INPUT_BYTES together.
     */
    inputs: Type.Optional(Type.Array(JobInputRef, { maxItems: 256 })),
    /** The same key in the same workspace returns the job made first instead of a second one. */
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    /**
     * Run in podman from this root filesystem: an absolute path on the machine, inside a directory
     * its owner allowed (jobs.rootfs_dirs in the agent's config). A machine without podman declines it.
     */
    rootfs: Type.Optional(Type.String({ minLength: 2, maxLength: 4096, pattern: "^/[^\\0]*$" })),
    /** Run in podman from this OCI image (pulled by the machine when missing), e.g. "docker.io/library/debian:12". */
    image: Type.Optional(
      Type.String({ minLength: 1, maxLength: 512, pattern: "^[a-z0-9][A-Za-z0-9._:/@+-]*$" }),
    ),
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
  /** Ended for good: an end state with no retry to come (retries spent, or its end not in retry_on). */
  ended: Type.Boolean(),
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

/** What `POST /api/v1/jobs/inputs` answers: the uploaded bytes' name for a job spec's `inputs`. */
export const JobInputUploaded = Type.Object({ sha256: Type.String(), size: Type.Integer() });
export type JobInputUploaded = Static<typeof JobInputUploaded>;

/** A file the job left under $B9_OUTPUT_DIR, kept by the gateway. */
export const JobOutputView = Type.Object({
  name: Type.String(),
  sha256: Type.String(),
  size: Type.Integer(),
});
export type JobOutputView = Static<typeof JobOutputView>;
export const JobOutputList = Type.Object({ outputs: Type.Array(JobOutputView) });
export type JobOutputList = Static<typeof JobOutputList>;

/** One line of a job's output, as `GET /api/v1/jobs/ID/logs` streams them (NDJSON). */
export const JobLogLine = Type.Object({
  /** Numbered from 1 per job, across its attempts: `?after=N` resumes after line N. */
  seq: Type.Integer(),
  at: Type.String({ format: "date-time" }),
  attempt: Type.Integer(),
  stream: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]),
  line: Type.String(),
});
export type JobLogLine = Static<typeof JobLogLine>;

/*
 * Gateway ↔ agent, over the agent channel (the gateway's requests to the agent):
 *
 *   POST /jobs                      JobAssignment → 200, NDJSON stream of JobRunEvent until the run
 *                                   ends (or the channel drops; then the gateway re-attaches):
 *   GET  /jobs/ID/events?after=SEQ  the same stream again from after SEQ (events are kept by the agent
 *                                   until DELETE), following until the run ends
 *   POST /jobs/ID/cancel            stop it: SIGTERM, a grace period, SIGKILL; its stream then ends
 *                                   with state CANCELLED
 *   GET  /jobs/ID/outputs/NAME      one output's bytes (announced by an "output" event)
 *   DELETE /jobs/ID                 the gateway has kept everything: the agent forgets the run
 *   GET  /jobs                      AgentJobList: the runs the agent knows (after a restart of
 *                                   either side, what became of each)
 */

/** Gateway → agent: run attempt `attempt` of a job. */
export const JobAssignment = Type.Object({
  job_id: Type.String(),
  attempt: Type.Integer({ minimum: 1 }),
  spec: CreateJob,
  /** Indexes (hardware.gpus[].index) of the GPUs the job may see; empty for a CPU job. */
  gpus: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 16 }),
  /** The spec's inputs, with their bytes (base64). */
  inputs: Type.Array(Type.Object({ name: JobFileName, sha256: Type.String(), data_base64: Type.String() }), {
    maxItems: 256,
  }),
});
export type JobAssignment = Static<typeof JobAssignment>;

/** The states an agent reports for a run (the gateway owns QUEUED, ASSIGNED and LOST). */
export const JobRunState = Type.Union([
  Type.Literal("PREPARING"),
  Type.Literal("RUNNING"),
  Type.Literal("SUCCEEDED"),
  Type.Literal("FAILED"),
  Type.Literal("TIMED_OUT"),
  Type.Literal("CANCELLED"),
]);
export type JobRunState = Static<typeof JobRunState>;

/** Agent → gateway: what happened in a run, numbered from 1 per run (`seq`), times in ms. */
export const JobRunEvent = Type.Union([
  Type.Object({
    type: Type.Literal("state"),
    seq: Type.Integer({ minimum: 1 }),
    at: Type.Integer(),
    state: JobRunState,
    /** Why, in a sentence ("exit code 3", "killed: out of memory (limit 64 MiB)", "timed out after 2h"). */
    reason: Type.Optional(Type.String()),
    exit_code: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    /** Ended because the memory limit was hit (reported as FAILED with this set). */
    out_of_memory: Type.Optional(Type.Boolean()),
    /** On the run's last state: the energy its processes and GPUs used, when the agent could measure it. */
    energy: Type.Optional(EnergyReading),
  }),
  Type.Object({
    type: Type.Literal("log"),
    seq: Type.Integer({ minimum: 1 }),
    at: Type.Integer(),
    stream: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]),
    /** At most MAX_JOB_LOG_LINE_BYTES; a longer line is cut and says how much was cut. */
    line: Type.String(),
  }),
  Type.Object({
    type: Type.Literal("output"),
    seq: Type.Integer({ minimum: 1 }),
    at: Type.Integer(),
    name: JobFileName,
    sha256: Type.String({ pattern: "^[a-f0-9]{64}$" }),
    size: Type.Integer({ minimum: 0 }),
  }),
]);
export type JobRunEvent = Static<typeof JobRunEvent>;

export const AgentJobList = Type.Object({
  jobs: Type.Array(
    Type.Object({
      job_id: Type.String(),
      attempt: Type.Integer(),
      state: JobRunState,
      /** The last event's seq. */
      seq: Type.Integer(),
    }),
  ),
});
export type AgentJobList = Static<typeof AgentJobList>;
