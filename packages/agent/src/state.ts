import type { Hardware, Usage } from "@beta9/protocol";

/** What the agent knows about itself right now; read by the control API, the heartbeat and the TUI. */
export class AgentState {
  readonly machineId: string;
  readonly pool: string;
  readonly gateway: string;
  readonly startedAt = Date.now();
  hardware: Hardware;
  usage: Usage | null = null;
  /** The status the gateway gave in its last ack, or CONNECTING / DISCONNECTED. */
  status = "CONNECTING";
  gatewayConnected = false;
  lastHeartbeatAt: number | null = null;
  lastAckAt: number | null = null;
  runningJobs = 0;
  totalJobs = 0;
  inferenceStatus = "stopped";
  inferencePort = 0;
  heartbeatsSent = 0;
  reconnects = 0;

  constructor(init: { machineId: string; pool: string; gateway: string; hardware: Hardware }) {
    this.machineId = init.machineId;
    this.pool = init.pool;
    this.gateway = init.gateway;
    this.hardware = init.hardware;
  }
}
