import type { Usage } from "@beta9/protocol";
import type { InferenceManager } from "../inference/manager.ts";
import type { RequestActivity, ServeOrigin } from "../inference/request-activity.ts";
import type { JobManager } from "../jobs/manager.ts";
import type { PullTracker } from "../models/pull-tracker.ts";
import type { AgentState } from "../state.ts";
import type { LogFeed, LogLine } from "./log-feed.ts";

/** Everything the dashboard draws, read from the agent at one instant. */
export interface DashboardModel {
  now: number;
  machine: { id: string; name?: string | undefined };
  /** The gateway's word for this machine (READY, …), or CONNECTING / DISCONNECTED. */
  status: string;
  /** The agent is shutting down (q, Ctrl+C, SIGTERM). */
  stopping: boolean;
  gateway: { url: string; connected: boolean; reconnects: number };
  pool: string;
  usage: { cpuPercent: number; memoryUsedBytes: number; memoryTotalBytes: number } | null;
  gpus: GpuView[];
  lastHeartbeatAt: number | null;
  jobs: JobView[];
  /** Jobs run on this machine (the gateway's), newest first. */
  runs: RunView[];
  inference: {
    status: string;
    endpoint: string | null;
    engines: string[];
    models: ModelView[];
  };
  pulls: PullView[];
  logs: LogLine[];
}

export interface GpuView {
  name: string;
  vramBytes: number;
  usedBytes?: number | undefined;
}

/** A model served here: a replica when the gateway placed it, with the requests it is answering. */
export interface JobView {
  model: string;
  origin: ServeOrigin | null;
  state: string;
  running: number;
  served: number;
  lastRequestAt: number | null;
}

/** A job this agent runs, or ran and still keeps. */
export interface RunView {
  id: string;
  state: string;
  /** When its command started (RUNNING), and when the run ended; null while not yet / still. */
  startedAt: number | null;
  endedAt: number | null;
  gpus: number[];
  lastLine: string | null;
}

export interface ModelView {
  name: string;
  state: string;
  engine: string;
  memoryBytes: number | null;
  contextSize: number | null;
  error?: string | undefined;
}

export interface PullView {
  model: string;
  status: string;
  completed?: number | undefined;
  total?: number | undefined;
  unit?: "tensors" | undefined;
}

/** The parts of a running agent the dashboard reads; all in-process, nothing over HTTP. */
export interface DashboardSources {
  state: AgentState;
  inference: Pick<InferenceManager, "overall" | "models" | "detections">;
  activity: RequestActivity;
  pulls: PullTracker;
  logs: LogFeed;
  /** Absent: an agent that runs no jobs (the dashboard's own tests). */
  jobs?: Pick<JobManager, "runs"> | undefined;
  endpoint: () => string | null;
  machineName?: string | undefined;
}

/** How many log lines a snapshot carries: more than any terminal shows. */
const LOG_LINES = 300;

export function readModel(
  src: DashboardSources,
  extra: { now: number; stopping: boolean; usage: Usage | null },
): DashboardModel {
  const s = src.state;
  const usage = extra.usage;
  const models = src.inference.models();
  return {
    now: extra.now,
    machine: { id: s.machineId, name: src.machineName },
    status: s.status,
    stopping: extra.stopping,
    gateway: { url: s.gateway, connected: s.gatewayConnected, reconnects: s.reconnects },
    pool: s.pool,
    usage: usage
      ? {
          cpuPercent: usage.cpu_percent,
          memoryUsedBytes: usage.memory_used_bytes,
          memoryTotalBytes: usage.memory_total_bytes,
        }
      : null,
    gpus: s.hardware.gpus.map((g) => ({
      name: g.name,
      vramBytes: g.memory_total_bytes,
      usedBytes: usage?.gpus.find((u) => u.index === g.index)?.memory_used_bytes ?? g.memory_used_bytes,
    })),
    lastHeartbeatAt: s.lastHeartbeatAt,
    jobs: models.map((m) => {
      const a = src.activity.get(m.name);
      return {
        model: m.name,
        origin: a?.origin ?? null,
        state: m.state,
        running: a?.running ?? 0,
        served: a?.served ?? 0,
        lastRequestAt: a?.lastRequestAt ?? null,
      };
    }),
    runs: (src.jobs?.runs() ?? []).map((r) => {
      const running = r.events.find((e) => e.type === "state" && e.state === "RUNNING");
      return {
        id: r.record.job_id,
        state: r.record.state,
        startedAt: running?.at ?? null,
        endedAt: r.ended ? (r.events.at(-1)?.at ?? null) : null,
        gpus: r.record.gpus,
        lastLine: r.lastLine,
      };
    }),
    inference: {
      status: src.inference.overall(),
      endpoint: src.endpoint(),
      engines: src.inference.detections.filter((d) => d.installed).map((d) => d.engine),
      models: models.map((m) => ({
        name: m.name,
        state: m.state,
        engine: m.engine,
        memoryBytes: m.memory_bytes,
        contextSize: m.context_size,
        error: m.error,
      })),
    },
    pulls: src.pulls.active().map((p) => ({
      model: p.model,
      status: p.status,
      completed: p.completed,
      total: p.total,
      unit: p.unit,
    })),
    logs: src.logs.last(LOG_LINES),
  };
}
