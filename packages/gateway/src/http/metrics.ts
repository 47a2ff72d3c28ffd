import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { nodeHttp } from "@beta9/http/node-http";
import { MachineStatuses } from "@beta9/protocol";
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { ApiKeyAuth } from "../auth/api-keys.ts";
import type { MachineRegistry } from "../machines/registry.ts";

/** One finished inference request, as its meter saw it (metering/metering.ts records it). */
export interface InferenceRecord {
  /** The model, or "unknown" for a name the gateway does not know. */
  model: string;
  status: number;
  seconds: number;
  firstByteSeconds: number | null;
  /** A machine answered (or began to): the duration is an inference's, not a refusal's. */
  reachedMachine: boolean;
  promptTokens: number;
  completionTokens: number;
  /** The tokens that tell the generation speed, and the seconds they took. */
  generation: { tokens: number; seconds: number };
  /** The answer's measured energy and carbon (carbon/footprint.ts); absent when none was measured. */
  footprint?: { machine: string; method: string; wh: number; co2eG: number | null } | undefined;
}

/** Per-model inference metrics: one call per finished request, from the OpenAI and Ollama routes alike. */
export interface InferenceMetrics {
  record(r: InferenceRecord): void;
}

/** What the scheduler tells the metrics about replicas. */
export interface ReplicaGauges {
  /** Each replica's model and state (agents' states, plus "loading" while a machine is being chosen). */
  replicaStates(): { model: string; state: string }[];
  /** Requests waiting for a replica to load, by model. */
  coldStartWaiting(): ReadonlyMap<string, number>;
}

/**
 * The gateway's Prometheus metrics, on a registry of its own (tests start several gateways). They
 * name every workspace's models and traffic, so /metrics asks for an operator's key with the read
 * (or admin) scope, which Prometheus sends as `authorization: {credentials_file: …}`.
 */
export function installMetrics(
  app: FastifyInstance,
  registry: MachineRegistry,
  replicas: ReplicaGauges,
  auth: ApiKeyAuth,
): { registry: Registry; inference: InferenceMetrics } {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: "beta9_gateway_" });

  const requests = new Counter({
    name: "beta9_http_requests_total",
    help: "HTTP requests answered, by route and status code.",
    labelNames: ["method", "route", "status"] as const,
    registers: [reg],
  });
  const duration = new Histogram({
    name: "beta9_http_request_duration_seconds",
    help: "Time to answer an HTTP request.",
    labelNames: ["method", "route"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [reg],
  });
  new Gauge({
    name: "beta9_machines",
    help: "Machines known to this gateway, by status.",
    labelNames: ["status"] as const,
    registers: [reg],
    collect() {
      const counts = registry.countByStatus();
      for (const s of MachineStatuses) this.set({ status: s }, counts.get(s) ?? 0);
    },
  });
  new Counter({
    name: "beta9_heartbeats_total",
    help: "Heartbeats received from agents.",
    registers: [reg],
    collect() {
      this.reset();
      this.inc(registry.heartbeats);
    },
  });

  // A callback hook: every request passes it, and an async one costs a promise each time.
  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.url ?? "unmatched";
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    done();
  });

  new Gauge({
    name: "beta9_replicas",
    help: "Replicas of models on machines, by model and state (starting, ready, error as agents report; loading while the gateway places one).",
    labelNames: ["model", "state"] as const,
    registers: [reg],
    collect() {
      this.reset();
      for (const r of replicas.replicaStates()) this.inc({ model: r.model, state: r.state });
    },
  });
  new Gauge({
    name: "beta9_cold_start_waiting_requests",
    help: "Requests waiting for a replica of their model to load (scale from zero), by model.",
    labelNames: ["model"] as const,
    registers: [reg],
    collect() {
      this.reset();
      for (const [model, n] of replicas.coldStartWaiting()) this.set({ model }, n);
    },
  });

  const requestsByModel = new Counter({
    name: "beta9_inference_requests_total",
    help: "Inference requests answered, by model and status code (499: the client left; 502: the answer was cut off).",
    labelNames: ["model", "status"] as const,
    registers: [reg],
  });
  const inferenceDuration = new Histogram({
    name: "beta9_inference_duration_seconds",
    help: "Time from receiving an inference request to the end of its answer.",
    labelNames: ["model"] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [reg],
  });
  const timeToFirstByte = new Histogram({
    name: "beta9_inference_time_to_first_byte_seconds",
    help: "Time from receiving an inference request to the first byte of its answer (the first token, when streamed).",
    labelNames: ["model"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [reg],
  });
  const tokens = new Counter({
    name: "beta9_inference_tokens_total",
    help: "Tokens of inference requests, by model and kind (prompt, completion); rate() of completion tokens is the pool's generation speed.",
    labelNames: ["model", "kind"] as const,
    registers: [reg],
  });
  const tokensPerSecond = new Histogram({
    name: "beta9_inference_completion_tokens_per_second",
    help: "Generation speed of each answered request: for a stream, the tokens after the first over the time after it; for a whole answer, its tokens over its time.",
    labelNames: ["model"] as const,
    buckets: [1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000],
    registers: [reg],
  });
  const energy = new Counter({
    name: "beta9_inference_energy_wh_total",
    help: "Energy of inference answers as their machines measured it (Wh, before PUE), by model, machine and method (counter, power_sampled, util_tdp, static).",
    labelNames: ["model", "machine", "method"] as const,
    registers: [reg],
  });
  const co2e = new Counter({
    name: "beta9_inference_co2e_grams_total",
    help: "Location-based emissions of inference answers (gCO2e = Wh × PUE × the machine's grid intensity / 1000), by model, machine and energy method.",
    labelNames: ["model", "machine", "method"] as const,
    registers: [reg],
  });
  const inference: InferenceMetrics = {
    record(r) {
      if (r.footprint) {
        const labels = { model: r.model, machine: r.footprint.machine, method: r.footprint.method };
        energy.inc(labels, r.footprint.wh);
        if (r.footprint.co2eG !== null) co2e.inc(labels, r.footprint.co2eG);
      }
      const model = { model: r.model };
      requestsByModel.inc({ model: r.model, status: String(r.status) });
      if (r.reachedMachine) inferenceDuration.observe(model, r.seconds);
      if (r.firstByteSeconds !== null) timeToFirstByte.observe(model, r.firstByteSeconds);
      if (r.promptTokens > 0) tokens.inc({ model: r.model, kind: "prompt" }, r.promptTokens);
      if (r.completionTokens > 0) tokens.inc({ model: r.model, kind: "completion" }, r.completionTokens);
      // Under a millisecond says nothing about speed (a cached or one-token answer).
      if (r.status === 200 && r.generation.tokens > 0 && r.generation.seconds >= 0.001)
        tokensPerSecond.observe(model, r.generation.tokens / r.generation.seconds);
    },
  };

  app.get("/metrics", async (req, reply) => {
    await auth.operator(req, "read the gateway's metrics", "read");
    return reply.header("content-type", reg.contentType).send(await reg.metrics());
  });
  return { registry: reg, inference };
}

/**
 * /metrics with no key on an address of its own (--metrics-listen), for a scraper on the same host
 * or a private network; everything else there is 404. Resolves to the bound "host:port".
 */
export async function listenMetrics(
  reg: Registry,
  at: { host: string; port: number },
): Promise<{ server: Server; address: string }> {
  const server = nodeHttp.createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "not_found", message: "only GET /metrics is served here" } }));
      return;
    }
    reg.metrics().then(
      (text) => res.writeHead(200, { "content-type": reg.contentType }).end(text),
      () =>
        res.writeHead(500, { "content-type": "application/json" }).end(
          JSON.stringify({
            error: { code: "internal", message: "could not collect the metrics; see the gateway's log" },
          }),
        ),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return { server, address: `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}` };
}
