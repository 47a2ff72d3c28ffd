import type { CreateJob } from "@beta9/protocol";
import type { Job, Repositories } from "@beta9/store";
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
