/*
 * Short liveness settings for a gateway under test: a dead machine shows within seconds, not the
 * default quarter-minute. Shared by the gateway's cluster tests and bench/faults.
 */

// Eight missed beats before UNHEALTHY: short, yet no flapping when the whole suite loads two cores.
export const LIVENESS = { heartbeatMs: 500, unhealthyAfterMs: 4_000, offlineAfterMs: 8_000 };
export const GATEWAY_ARGS = [
  "--heartbeat-interval",
  `${LIVENESS.heartbeatMs}ms`,
  "--unhealthy-after",
  `${LIVENESS.unhealthyAfterMs}ms`,
  "--offline-after",
  `${LIVENESS.offlineAfterMs}ms`,
];
