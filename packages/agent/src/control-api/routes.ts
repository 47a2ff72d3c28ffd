import { createHash, timingSafeEqual } from "node:crypto";
import { bearerToken } from "@beta9/http";
import { AgentStatus, BETA9_VERSION, Beta9Error, type EnergyMethod, Health } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Registry } from "prom-client";
import type { AgentState } from "../state.ts";

export interface ControlContext {
  state: AgentState;
  metrics: Registry;
  /** The machine credential: the bearer a local caller must show. */
  credential: () => string;
  /** True for requests that came over the agent channel, i.e. from the gateway. */
  fromGateway: (req: FastifyRequest) => boolean;
  /** The agent's own OpenAI-compatible base URL (served by this control server), once it listens. */
  endpoint: () => string | null;
  /** The machine's power over the last second, once measured. */
  power?: () => { watts: number; method: EnergyMethod } | undefined;
}

const OPEN_ROUTES = new Set(["/health"]);

/**
 * Authentication for every route of the control API, installed on the root app so that each plugin
 * (inference, /v1, …) is covered, not only the one that declares it.
 */
export function installControlAuth(
  app: FastifyInstance,
  ctx: Pick<ControlContext, "credential" | "fromGateway">,
): void {
  // A callback hook: every request passes it (the gateway's first), and an async one costs a promise.
  app.addHook("onRequest", (req, _reply, done) => {
    if (ctx.fromGateway(req) || OPEN_ROUTES.has(req.url.split("?")[0] ?? "")) return done();
    const given = bearerToken(req.headers.authorization);
    if (!given) {
      return done(
        new Beta9Error(
          "unauthorized",
          "send `Authorization: Bearer <machine.token>` (the token is in the agent's config file)",
        ),
      );
    }
    if (!sameSecret(given, ctx.credential()))
      return done(new Beta9Error("credential_invalid", "wrong token for this agent's control API"));
    done();
  });
}

/**
 * The control API (:9999): the fork's routes (docs/architecture.md §1), now authenticated. Requests
 * over the agent channel come from the gateway, which proved itself when the channel was opened; local
 * callers show the machine credential from the agent's config.
 */
export const controlRoutes: FastifyPluginAsyncTypebox<ControlContext> = async (app, ctx) => {
  app.get("/health", { schema: { response: { 200: Health } } }, async () => ({
    status: "ok" as const,
    version: BETA9_VERSION,
  }));

  app.get("/status", { schema: { response: { 200: AgentStatus } } }, async () => {
    const s = ctx.state;
    const usage = s.usage;
    const power = ctx.power?.();
    return {
      machine_id: s.machineId,
      pool: s.pool,
      status: s.status,
      uptime_seconds: Math.round((Date.now() - s.startedAt) / 1000),
      inference_status: s.inferenceStatus,
      inference_port: inferencePort(ctx.endpoint()),
      inference_endpoint: ctx.endpoint(),
      running_jobs: s.runningJobs,
      total_jobs: s.totalJobs,
      cpu_percent: usage?.cpu_percent ?? 0,
      memory_percent:
        usage && usage.memory_total_bytes > 0
          ? round1((100 * usage.memory_used_bytes) / usage.memory_total_bytes)
          : 0,
      gpu_count: s.hardware.gpus.length,
      gateway: s.gateway,
      gateway_connected: s.gatewayConnected,
      last_heartbeat_at: s.lastHeartbeatAt === null ? null : new Date(s.lastHeartbeatAt).toISOString(),
      version: BETA9_VERSION,
      ...(power === undefined ? {} : { power }),
    };
  });

  app.get("/metrics", async (_req, reply) => {
    return reply.header("content-type", ctx.metrics.contentType).send(await ctx.metrics.metrics());
  });
};

/** The port of the agent's own /v1 (the engines themselves listen on loopback ports nobody else may use). */
function inferencePort(endpoint: string | null): number {
  if (endpoint === null) return 0;
  const url = new URL(endpoint);
  return Number(url.port || (url.protocol === "https:" ? 443 : 80));
}

const round1 = (n: number) => Math.round(n * 10) / 10;

function sameSecret(a: string, b: string): boolean {
  if (!b) return false;
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
}
