import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { AgentState } from "./state.ts";

export function agentMetrics(state: AgentState): Registry {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: "beta9_agent_" });
  new Gauge({
    name: "beta9_agent_gateway_connected",
    help: "1 while the agent channel to the gateway is open.",
    registers: [reg],
    collect() {
      this.set(state.gatewayConnected ? 1 : 0);
    },
  });
  new Counter({
    name: "beta9_agent_heartbeats_sent_total",
    help: "Heartbeats sent to the gateway.",
    registers: [reg],
    collect() {
      this.reset();
      this.inc(state.heartbeatsSent);
    },
  });
  new Counter({
    name: "beta9_agent_reconnects_total",
    help: "Times the agent dialled the gateway again.",
    registers: [reg],
    collect() {
      this.reset();
      this.inc(state.reconnects);
    },
  });
  new Gauge({
    name: "beta9_agent_cpu_percent",
    help: "CPU use of the machine at the last heartbeat.",
    registers: [reg],
    collect() {
      this.set(state.usage?.cpu_percent ?? 0);
    },
  });
  new Gauge({
    name: "beta9_agent_memory_used_bytes",
    help: "Memory in use on the machine at the last heartbeat.",
    registers: [reg],
    collect() {
      this.set(state.usage?.memory_used_bytes ?? 0);
    },
  });
  return reg;
}
