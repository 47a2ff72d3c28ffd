import { type Static, Type } from "typebox";
import { EnergyMethod } from "./energy.ts";

/** The agent's control API (:9999), as the fork's agents answered it, plus what is new. */
export const AgentStatus = Type.Object({
  machine_id: Type.String(),
  pool: Type.String(),
  /** The machine's status as the gateway last told it, or CONNECTING / DISCONNECTED. */
  status: Type.String(),
  uptime_seconds: Type.Number(),
  inference_status: Type.String(),
  inference_port: Type.Integer(),
  /** The agent's own authenticated /v1, on its tailnet address when it listens there. */
  inference_endpoint: Type.Union([Type.String(), Type.Null()]),
  running_jobs: Type.Integer(),
  total_jobs: Type.Integer(),
  cpu_percent: Type.Number(),
  memory_percent: Type.Number(),
  gpu_count: Type.Integer(),
  gateway: Type.String(),
  gateway_connected: Type.Boolean(),
  last_heartbeat_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  version: Type.String(),
  /** The whole machine's power over the last second and how it was measured; absent until measured. */
  power: Type.Optional(Type.Object({ watts: Type.Number({ minimum: 0 }), method: EnergyMethod })),
});
export type AgentStatus = Static<typeof AgentStatus>;

export const CONTROL_PORT = 9999;
export const GATEWAY_PORT = 1994;
