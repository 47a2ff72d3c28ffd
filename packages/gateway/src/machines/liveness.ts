import type { InferenceReport, JobRunners, MachineStatus, Usage } from "@beta9/protocol";
import type { Machine } from "@beta9/store";

export interface LivenessConfig {
  /** Expected heartbeat interval, told to agents. */
  heartbeatIntervalMs: number;
  /** No heartbeat for this long → UNHEALTHY. */
  unhealthyAfterMs: number;
  /** No heartbeat for this long → OFFLINE. */
  offlineAfterMs: number;
  /**
   * A fork agent's keepalives come every 60 s and its gateway kept a machine for 300 s after the last
   * one: such a machine is UNHEALTHY after half of this without a keepalive, OFFLINE after all of it.
   */
  keepaliveTtlMs: number;
  /** An agent channel's HTTP/2 session with no request for this long goes back to its idle form. */
  channelIdleMs?: number;
}

export const DEFAULT_LIVENESS: LivenessConfig = {
  heartbeatIntervalMs: 5_000,
  // Two missed beats and a little slack: a dead agent shows within 15 s, a late beat does not flap.
  unhealthyAfterMs: 12_000,
  offlineAfterMs: 60_000,
  keepaliveTtlMs: 300_000,
};

/** When a machine's silence makes it UNHEALTHY and OFFLINE: fork (keepalive) machines beat less often. */
export function silenceLimits(
  row: Pick<Machine, "protocol">,
  cfg: LivenessConfig,
): { unhealthyAfterMs: number; offlineAfterMs: number } {
  if (row.protocol !== "keepalive") return cfg;
  return {
    unhealthyAfterMs: Math.max(cfg.unhealthyAfterMs, cfg.keepaliveTtlMs / 2),
    offlineAfterMs: Math.max(cfg.offlineAfterMs, cfg.keepaliveTtlMs),
  };
}

/** What the gateway knows of a machine that is not in the store: it changes every few seconds. */
export interface Liveness {
  connected: boolean;
  lastHeartbeatAt: number | null;
  usage: Usage | null;
  inference: InferenceReport | null;
  runningJobs: number;
  /** The job runners its agent last reported. */
  runners?: JobRunners | undefined;
}

/**
 * The one place a machine's status is decided. Liveness first (a dead machine is not "cordoned"),
 * then the owner's choices, then load.
 */
export function machineStatus(row: Machine, live: Liveness, now: number, cfg: LivenessConfig): MachineStatus {
  const since = live.lastHeartbeatAt === null ? Number.POSITIVE_INFINITY : now - live.lastHeartbeatAt;
  const limits = silenceLimits(row, cfg);
  if (since >= limits.offlineAfterMs) return "OFFLINE";
  if (since >= limits.unhealthyAfterMs) return "UNHEALTHY";
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
