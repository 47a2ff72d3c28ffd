import { JOB_STATES, type JobState } from "@beta9/protocol";
import { Counter, Gauge, type Registry } from "prom-client";

/** What the job metrics read of the scheduler. */
export interface JobGauges {
  /** Runs this gateway follows now. */
  following(): number;
  /** Clients waiting for a job's next log lines here. */
  logFollowers(): number;
}

/**
 * Job metrics on the gateway's registry: the transitions this gateway made, the runs it follows and
 * the clients following logs. Returns what counts a transition.
 */
export function installJobMetrics(reg: Registry, gauges: JobGauges): (to: JobState) => void {
  const transitions = new Counter({
    name: "beta9_job_transitions_total",
    help: "Job transitions this gateway made, by the state entered.",
    labelNames: ["state"] as const,
    registers: [reg],
  });
  for (const s of JOB_STATES) transitions.inc({ state: s }, 0);
  new Gauge({
    name: "beta9_job_runs_followed",
    help: "Job runs this gateway follows over its machines' channels now.",
    registers: [reg],
    collect() {
      this.set(gauges.following());
    },
  });
  new Gauge({
    name: "beta9_job_log_followers",
    help: "Clients waiting here for a job's next log lines.",
    registers: [reg],
    collect() {
      this.set(gauges.logFollowers());
    },
  });
  return (to) => transitions.inc({ state: to });
}
