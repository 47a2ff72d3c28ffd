import type { CreateJob, JobState } from "@beta9/protocol";
import type { Job, Repositories } from "@beta9/store";
import type { AuditInput } from "../audit/audit.ts";
import type { Footprint } from "../carbon/footprint.ts";
import { jobAsk } from "./needs.ts";

/**
 * What a run used on its machine: its runtime × the CPUs and GPUs the job asked for, and its
 * footprint when the agent measured its energy (null columns otherwise).
 */
export async function recordRunUsage(
  store: Repositories,
  job: Job,
  machineId: string,
  startedAt: number,
  endedAt: number,
  footprint?: Footprint,
): Promise<void> {
  const ask = jobAsk(JSON.parse(job.spec) as CreateJob);
  const seconds = Math.max(0, endedAt - startedAt) / 1000;
  await store.jobRuns.recordUsage({
    job_id: job.id,
    attempt: job.attempt,
    workspace_id: job.workspace_id,
    machine_id: machineId,
    started_at: startedAt,
    ended_at: endedAt,
    cpu_seconds: seconds * ask.cpus,
    gpu_seconds: seconds * ask.gpuCount,
    ...footprint,
  });
}

/**
 * A run's audit event, at metadata level (never its command's output): who submitted it (key),
 * workspace, machine and its country, how it ended, for how long, its energy and gCO2e when measured,
 * and the id of the request that submitted it. Enqueued (batched, failing open) like inference's.
 */
export function jobRunEvent(
  job: Job,
  run: {
    machineId: string;
    country: string | null;
    state: JobState;
    exitCode: number | null;
    startedAt: number;
    endedAt: number;
    footprint?: Footprint | undefined;
  },
): AuditInput {
  return {
    actor: { type: "key", id: job.key_id },
    workspaceId: job.workspace_id,
    action: "job.run",
    resource: `job:${job.id}`,
    outcome: run.state === "SUCCEEDED" ? "ok" : run.state === "CANCELLED" ? "refused" : "failed",
    requestId: job.request_id,
    details: {
      attempt: job.attempt,
      state: run.state,
      exit_code: run.exitCode,
      machine_id: run.machineId,
      country: run.country,
      seconds: Math.max(0, run.endedAt - run.startedAt) / 1000,
      energy_wh: run.footprint?.energy_wh ?? null,
      co2e_g: run.footprint?.co2e_g ?? null,
    },
  };
}
