import { EventEmitter } from "node:events";
import type { Hardware, Usage } from "@beta9/protocol";

/**
 * What the agent knows about itself right now; read by the control API, the heartbeat and the TUI.
 * Changes a person watches (the connection, the gateway's verdict, heartbeats) emit "change", so the
 * dashboard redraws when they happen rather than at its next tick.
 */
export class AgentState extends EventEmitter<{ change: [] }> {
  readonly machineId: string;
  readonly pool: string;
  /** The gateway (replica) connected to, or dialled first. */
  gateway: string;
  readonly startedAt = Date.now();
  hardware: Hardware;
  usage: Usage | null = null;
  lastAckAt: number | null = null;
  runningJobs = 0;
  totalJobs = 0;
  inferenceStatus = "stopped";
  inferencePort = 0;
  heartbeatsSent = 0;
  #status = "CONNECTING";
  #gatewayConnected = false;
  #lastHeartbeatAt: number | null = null;
  #reconnects = 0;

  constructor(init: { machineId: string; pool: string; gateway: string; hardware: Hardware }) {
    super();
    this.machineId = init.machineId;
    this.pool = init.pool;
    this.gateway = init.gateway;
    this.hardware = init.hardware;
  }

  /** The status the gateway gave in its last ack, or CONNECTING / DISCONNECTED. */
  get status(): string {
    return this.#status;
  }
  set status(value: string) {
    if (value === this.#status) return;
    this.#status = value;
    this.emit("change");
  }

  get gatewayConnected(): boolean {
    return this.#gatewayConnected;
  }
  set gatewayConnected(value: boolean) {
    if (value === this.#gatewayConnected) return;
    this.#gatewayConnected = value;
    this.emit("change");
  }

  get lastHeartbeatAt(): number | null {
    return this.#lastHeartbeatAt;
  }
  set lastHeartbeatAt(value: number | null) {
    this.#lastHeartbeatAt = value;
    this.emit("change");
  }

  /** Jobs running here now, and runs the agent keeps (until the gateway deletes them). */
  setJobCounts(running: number, total: number): void {
    if (running === this.runningJobs && total === this.totalJobs) return;
    this.runningJobs = running;
    this.totalJobs = total;
    this.emit("change");
  }

  /** Times the agent dialled the gateway again. */
  get reconnects(): number {
    return this.#reconnects;
  }
  set reconnects(value: number) {
    this.#reconnects = value;
    this.emit("change");
  }
}
