import { type Static, Type } from "typebox";

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
