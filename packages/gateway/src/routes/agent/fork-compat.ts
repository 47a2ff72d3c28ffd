import { bearerToken } from "@beta9/http";
import {
  Beta9Error,
  ForkKeepaliveRequest,
  ForkRegisterRequest,
  ForkResponse,
  type Hardware,
} from "@beta9/protocol";
import type { Machine } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { GatewayContext } from "../../context.ts";
import { verifyMachineCredential } from "../../machines/credentials.ts";
import { joinMachine } from "../../machines/join.ts";

/**
 * The fork's external-worker endpoints. Its agents register with the token they were given and send
 * the same token on every keepalive; here that token is bound to the machine id at registration, so
 * presenting it for another machine is refused (the fork's "Token Binding" limitation, fixed).
 */
export const forkCompatRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.post(
    "/api/v1/machine/register",
    { schema: { body: ForkRegisterRequest, response: { 200: ForkResponse } } },
    async (req) => {
      const b = req.body;
      const known = ctx.registry.get(b.machine_id);
      let machine: Machine;
      if (known) {
        // Registering again: the token must be the one this machine is bound to.
        machine = await verifyMachineCredential(ctx, b.machine_id, b.token, req.ip);
      } else {
        const joined = await joinMachine(
          ctx,
          {
            token: b.token,
            machineId: b.machine_id,
            hostname: b.hostname,
            agentVersion: "fork",
            hardware: forkHardware(b.cpu, b.memory),
            protocol: "keepalive",
          },
          ctx.registry.cfg.heartbeatIntervalMs,
        );
        machine = joined.machine;
        ctx.log.info({ machine_id: machine.id, pool: machine.pool, remote: req.ip }, "fork agent registered");
      }
      ctx.registry.heartbeat(machine.id, { usage: null, runningJobs: 0 });
      return { status: "ok" as const, machine_state: machineState(ctx, machine) };
    },
  );

  app.post(
    "/api/v1/machine/keepalive",
    { schema: { body: ForkKeepaliveRequest, response: { 200: ForkResponse } } },
    async (req) => {
      const b = req.body;
      const machine = await verifyMachineCredential(
        ctx,
        b.machine_id,
        bearerToken(req.headers.authorization),
        req.ip,
      );
      const m = b.metrics;
      const hw = JSON.parse(machine.hardware) as Hardware;
      const usage =
        m?.cpu_utilization_pct !== undefined || m?.memory_utilization_pct !== undefined
          ? {
              cpu_percent: clampPercent(m?.cpu_utilization_pct ?? 0),
              memory_total_bytes: hw.memory_total_bytes,
              memory_used_bytes: Math.round(
                (hw.memory_total_bytes * clampPercent(m?.memory_utilization_pct ?? 0)) / 100,
              ),
              gpus: [],
            }
          : null;
      if (b.agent_version && b.agent_version !== machine.agent_version) {
        await ctx.store.machines.update(machine.id, { agent_version: b.agent_version });
        ctx.registry.put({ ...machine, agent_version: b.agent_version });
      }
      ctx.registry.heartbeat(machine.id, { usage, runningJobs: 0 });
      return {
        status: "ok" as const,
        machine_state: machineState(ctx, ctx.registry.get(machine.id) ?? machine),
      };
    },
  );
};

function machineState(ctx: GatewayContext, machine: Machine) {
  return {
    machine_id: machine.id,
    status: (ctx.registry.status(machine.id) ?? "OFFLINE").toLowerCase(),
    pool_name: machine.pool,
    ttl_seconds: Math.round(ctx.registry.cfg.unhealthyAfterMs / 1000),
    last_keepalive: new Date().toISOString(),
    agent_version: machine.agent_version,
  };
}

const clampPercent = (n: number) => Math.min(100, Math.max(0, Number.isFinite(n) ? n : 0));

/** Kubernetes quantities as the fork sends them: cpu "8000m" or "8", memory "16Gi", "512Mi", "16G". */
export function forkHardware(cpu: string | undefined, memory: string | undefined): Hardware {
  return {
    os: "unknown",
    arch: "unknown",
    cpu_model: "unknown",
    cpu_cores: cpu ? parseCpu(cpu) : 0,
    memory_total_bytes: memory ? parseMemory(memory) : 0,
    gpus: [],
  };
}

function parseCpu(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(q.trim());
  if (!m) throw new Beta9Error("bad_request", `cpu must look like "8000m" or "8", not ${JSON.stringify(q)}`);
  const n = Number(m[1]);
  return Math.round(m[2] === "m" ? n / 1000 : n);
}

const UNITS: Record<string, number> = {
  "": 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  K: 1e3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

function parseMemory(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|k|M|G|T)?$/.exec(q.trim());
  if (!m)
    throw new Beta9Error("bad_request", `memory must look like "16Gi" or "512Mi", not ${JSON.stringify(q)}`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? ""] ?? 1));
}
