import { createHash } from "node:crypto";
import {
  Beta9Error,
  type CreateJob,
  type JobInputUploaded,
  type JobView,
  MAX_JOB_INPUT_BYTES,
} from "@beta9/protocol";
import type { Job, JobEvent, Store } from "@beta9/store";
import { newId } from "../auth/secrets.ts";
import { endedForGood, everFits, jobAsk } from "./needs.ts";

const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

/**
 * Queue a job for a workspace. The same idempotency key in that workspace returns the job it made
 * first (`created: false`), whatever the rest of the spec says: a client retrying a submission whose
 * answer it lost gets its job, not a second one.
 */
export async function submitJob(
  store: Store,
  caller: { workspaceId: string; keyId: string },
  spec: CreateJob,
  now = Date.now(),
  /** The submitting request's id, kept with the job (its logs and audit events name it). */
  requestId: string | null = null,
): Promise<{ job: Job; created: boolean }> {
  try {
    return await store.transaction((tx) =>
      tx.jobs.create(
        {
          id: newId("job_"),
          workspace_id: caller.workspaceId,
          key_id: caller.keyId,
          idempotency_key: spec.idempotency_key ?? null,
          spec: JSON.stringify(spec),
          priority: spec.priority ?? 0,
          max_retries: spec.retries ?? 0,
          request_id: requestId,
        },
        now,
      ),
    );
  } catch (err) {
    // Two submissions with one key at once: the second insert meets the first's unique row.
    if (spec.idempotency_key === undefined) throw err;
    const first = await store.jobs.byIdempotencyKey(caller.workspaceId, spec.idempotency_key);
    if (!first) throw err;
    return { job: first, created: false };
  }
}

/** Keep an input's bytes for the workspace, by their sha256 (the same bytes twice are kept once). */
export async function uploadInput(
  store: Store,
  workspaceId: string,
  data: Buffer,
  now = Date.now(),
): Promise<JobInputUploaded> {
  const sha256 = createHash("sha256").update(data).digest("hex");
  await store.jobRuns.putBlob(workspaceId, sha256, data, now);
  return { sha256, size: data.length };
}

/**
 * Refuse, before it is queued, a job that names an input its workspace never uploaded, whose inputs
 * together are over the cap, or that no machine of its pool could ever run (each taken as READY and
 * running nothing): it would wait forever. One that only fits no machine now is queued and waits.
 */
export async function checkJob(store: Store, workspaceId: string, spec: CreateJob): Promise<void> {
  if (
    spec.idempotency_key !== undefined &&
    (await store.jobs.byIdempotencyKey(workspaceId, spec.idempotency_key))
  )
    return;
  const inputs = spec.inputs ?? [];
  const names = new Set<string>();
  for (const i of inputs) {
    if (names.has(i.name))
      throw new Beta9Error("bad_request", `input ${i.name} is named twice; give each input its own name`);
    names.add(i.name);
  }
  const sizes = await store.jobRuns.blobSizes(workspaceId, [...new Set(inputs.map((i) => i.sha256))]);
  let total = 0;
  for (const i of inputs) {
    const size = sizes.get(i.sha256);
    if (size === undefined)
      throw new Beta9Error(
        "bad_request",
        `input ${i.name} (sha256 ${i.sha256}) was not uploaded by this workspace; upload it first with POST /api/v1/jobs/inputs`,
      );
    total += size;
  }
  if (total > MAX_JOB_INPUT_BYTES)
    throw new Beta9Error(
      "payload_too_large",
      `the job's inputs are ${total} bytes together; a job takes at most ${MAX_JOB_INPUT_BYTES} bytes of inputs`,
    );
  const fits = everFits(jobAsk(spec), await store.machines.list());
  if (!fits.ok) throw new Beta9Error("bad_request", `no machine could ever run this job: ${fits.reason}`);
}

/** A job of the workspace, or not_found: another workspace's job is as good as absent. */
export async function jobOf(store: Store, workspaceId: string, id: string): Promise<Job> {
  const job = await store.jobs.get(id, workspaceId);
  if (!job)
    throw new Beta9Error("not_found", `no job ${id} in this workspace; \`b9 job list\` shows its jobs`);
  return job;
}

/** Cancel a job that has not ended; an ended one stays as it ended. */
export async function cancelJob(store: Store, job: Job, by: string, now = Date.now()): Promise<Job> {
  const cancelled = await store.transaction((tx) =>
    tx.jobs.transition(job.id, "CANCELLED", { reason: `cancelled by ${by}` }, now),
  );
  if (cancelled) return cancelled;
  const current = (await store.jobs.get(job.id)) ?? job;
  throw new Beta9Error("conflict", `job ${job.id} has already ended (${current.state}); nothing to cancel`);
}

export function jobView(job: Job, workspaceName: string, events?: JobEvent[]): JobView {
  return {
    id: job.id,
    workspace: workspaceName,
    state: job.state as JobView["state"],
    reason: job.reason,
    spec: JSON.parse(job.spec) as CreateJob,
    priority: job.priority,
    attempt: job.attempt,
    max_retries: job.max_retries,
    ended: endedForGood(job),
    machine_id: job.machine_id,
    exit_code: job.exit_code,
    created_at: iso(job.created_at),
    started_at: isoOrNull(job.started_at),
    finished_at: isoOrNull(job.finished_at),
    ...(events
      ? {
          events: events.map((e) => ({
            at: iso(e.at),
            state: e.state as JobView["state"],
            reason: e.reason,
            machine_id: e.machine_id,
          })),
        }
      : {}),
  };
}
