import type { InferenceReport, MachineStatus, Usage } from "@beta9/protocol";
import type { Machine } from "@beta9/store";

export interface LivenessConfig {
  /** Expected heartbeat interval, told to agents. */
  heartbeatIntervalMs: number;
  /** No heartbeat for this long → UNHEALTHY. */
  unhealthyAfterMs: number;
  /** No heartbeat for this long → OFFLINE. */
  offlineAfterMs: number;
}

export const DEFAULT_LIVENESS: LivenessConfig = {
  heartbeatIntervalMs: 5_000,
  // Two missed beats and a little slack: a dead agent shows within 15 s, a late beat does not flap.
  unhealthyAfterMs: 12_000,
  offlineAfterMs: 60_000,
};

/** What the gateway knows of a machine that is not in the store: it changes every few seconds. */
export interface Liveness {
  connected: boolean;
  lastHeartbeatAt: number | null;
  usage: Usage | null;
  inference: InferenceReport | null;
  runningJobs: number;
}

/**
 * The one place a machine's status is decided. Liveness first (a dead machine is not "cordoned"),
 * then the owner's choices, then load.
 */
export function machineStatus(row: Machine, live: Liveness, now: number, cfg: LivenessConfig): MachineStatus {
  const since = live.lastHeartbeatAt === null ? Number.POSITIVE_INFINITY : now - live.lastHeartbeatAt;
  if (since >= cfg.offlineAfterMs) return "OFFLINE";
  if (since >= cfg.unhealthyAfterMs) return "UNHEALTHY";
  // An agent on the channel whose connection dropped is not answering, whatever its last beat said.
  if (row.protocol === "channel" && !live.connected) return "UNHEALTHY";
  if (row.draining_at !== null) return isEmpty(live) ? "DRAINED" : "DRAINING";
  if (row.cordoned_at !== null) return "CORDONED";
  if (live.runningJobs > 0) return "BUSY";
  return "READY";
}

/** The machine said it runs nothing (an agent yet to say what it runs is not taken for empty). */
function isEmpty(live: Liveness): boolean {
  return live.inference !== null && live.inference.models.length === 0 && live.runningJobs === 0;
}
