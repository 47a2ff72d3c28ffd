import { BlockList, isIP } from "node:net";
import { bearerToken } from "@beta9/http";
import {
  Beta9Error,
  canonicalModelName,
  ForkKeepaliveRequest,
  ForkRegisterRequest,
  ForkResponse,
  type Hardware,
  type InferenceReport,
} from "@beta9/protocol";
import type { Machine } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { recordJoin } from "../../auth/security-events.ts";
import type { GatewayContext } from "../../context.ts";
import { verifyMachineCredential } from "../../machines/credentials.ts";
import { joinMachine } from "../../machines/join.ts";
import type { AgentLink } from "../../machines/registry.ts";

/**
 * The fork's external-worker endpoints, as its Go agent calls them (pkg/agent/registration.go and
 * keepalive.go; recorded requests in packages/gateway/testdata/fork-agent). The agent sends the token
 * it was given (`b9 token create`) as `Authorization: Bearer` on registration and on every keepalive;
 * the body's `token` is its k3s token. The first registration spends the join token and binds it to
 * the machine id: it is that machine's credential from then on, refused for any other id (the fork's
 * "Token Binding" limitation, fixed).
 *
 * A keepalive's `inference` block says the machine's Ollama runs at IP:PORT with these models. The
 * gateway calls that server's OpenAI-compatible /v1 directly (no channel), as models served by hand:
 * only the operator's workspace may call them, never under a deployment's name.
 */
export const forkCompatRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  /** Why each machine's reported address was refused, last time: logged once per change. */
  const refused = new Map<string, string>();

  app.post(
    "/api/v1/machine/register",
    { schema: { body: ForkRegisterRequest, response: { 200: ForkResponse } } },
    async (req) => {
      const b = req.body;
      const credential = bearerToken(req.headers.authorization) ?? (b.token || undefined);
      if (!credential) {
        throw new Beta9Error(
          "credential_invalid",
          "missing token: the agent sends `Authorization: Bearer <token>`; give it a join token from `b9 token create` (b9agent init --token)",
        );
      }
      const known = ctx.registry.get(b.machine_id);
      let machine: Machine;
      if (known) {
        // Registering again (the agent restarted): the token must be the one this machine is bound to.
        machine = await verifyMachineCredential(ctx, b.machine_id, credential, req.ip);
      } else {
        const joined = await joinMachine(
          ctx,
          {
            token: credential,
            machineId: b.machine_id,
            hostname: b.hostname,
            agentVersion: "fork",
            hardware: forkHardware(b.cpu, b.memory),
            protocol: "keepalive",
          },
          ctx.registry.cfg.heartbeatIntervalMs,
        );
        machine = joined.machine;
        await recordJoin(ctx.audit, {
          requestId: req.id,
          machineId: machine.id,
          pool: machine.pool,
          country: machine.country,
          ip: req.ip,
          protocol: "keepalive",
        });
        ctx.log.info(
          { machine_id: machine.id, pool: machine.pool, asked_pool: b.pool_name, remote: req.ip },
          `fork agent ${machine.id} registered in pool ${machine.pool}`,
        );
      }
      ctx.registry.heartbeat(machine.id, { usage: null, runningJobs: 0 });
      return { status: "ok" as const, config: null, machine_state: machineState(ctx, machine) };
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
      const inference = b.inference ? servedByFork(machine.id, b.inference, req.ip) : undefined;
      ctx.registry.heartbeat(machine.id, { usage, runningJobs: 0, inference });
      return {
        status: "ok" as const,
        machine_state: machineState(ctx, ctx.registry.get(machine.id) ?? machine),
      };
    },
  );

  /** What the keepalive's `inference` block means for routing, and the link to the machine's server. */
  function servedByFork(
    id: string,
    inf: NonNullable<ForkKeepaliveRequest["inference"]>,
    remote: string,
  ): InferenceReport {
    const running = inf.status === "running" && (inf.models?.length ?? 0) > 0;
    const where = running ? forkServerOrigin(inf.ip, inf.port, remote) : undefined;
    const error = where && "refused" in where ? where.refused : undefined;
    if (error !== refused.get(id)) {
      if (error)
        ctx.log.warn({ machine_id: id, reported_ip: inf.ip, remote }, `fork machine ${id}: ${error}`);
      if (error) refused.set(id, error);
      else refused.delete(id);
    }
    const origin = where && "origin" in where ? where.origin : undefined;
    const current = ctx.registry.link(id);
    if (origin && current?.http?.origin !== origin) {
      const link: AgentLink = { http: { origin }, close: () => ctx.registry.detach(id, link) };
      ctx.registry.attach(id, link);
      ctx.log.info({ machine_id: id, origin, models: inf.models }, `fork machine ${id} serves at ${origin}`);
    } else if (!origin && current) {
      ctx.registry.detach(id, current);
    }
    return {
      engines: [{ engine: "ollama", installed: true }],
      models: running
        ? [...new Set((inf.models ?? []).map(canonicalModelName))].map((name) => ({
            name,
            engine: "ollama",
            state: origin ? "ready" : "unreachable",
            memory_bytes: null,
            context_size: null,
            ...(error ? { error } : {}),
          }))
        : [],
      memory_free_bytes: 0,
      vram_free_bytes: null,
    };
  }
};

/** Tailscale's address ranges: where the fork's agents report their Ollama. */
const TAILNET = new BlockList();
TAILNET.addSubnet("100.64.0.0", 10, "ipv4");
TAILNET.addSubnet("fd7a:115c:a1e0::", 48, "ipv6");

/**
 * Where the gateway may call a fork machine's server: the address its keepalive came from, or one on
 * the tailnet (the fork's way). Anything else (the gateway's own loopback, a cloud metadata address,
 * another host of the gateway's network) is refused, so a machine cannot aim the gateway at them.
 */
export function forkServerOrigin(
  ip: string | undefined,
  port: number | undefined,
  remote: string,
): { origin: string } | { refused: string } {
  const from = unmapped(remote);
  const host = ip === "localhost" ? (isIP(from) === 6 ? "::1" : "127.0.0.1") : unmapped(ip ?? "");
  const family = isIP(host);
  if (!port) return { refused: "its keepalive reports no inference port" };
  if (family === 0)
    return {
      refused: `it reports ${JSON.stringify(ip ?? "")} as its inference address; give the agent its Tailscale IP (b9agent init --hostname 100.x.y.z)`,
    };
  const own = host === from || (isLoopback(host) && isLoopback(from));
  if (!own && !TAILNET.check(host, family === 4 ? "ipv4" : "ipv6")) {
    return {
      refused: `it reports its inference server at ${host}, which is neither the address its keepalives come from (${from}) nor a Tailscale address; its models are not routed`,
    };
  }
  return { origin: family === 6 ? `http://[${host}]:${port}` : `http://${host}:${port}` };
}

const unmapped = (a: string) => (a.startsWith("::ffff:") && isIP(a.slice(7)) === 4 ? a.slice(7) : a);
const isLoopback = (a: string) => a === "::1" || a.startsWith("127.");

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
