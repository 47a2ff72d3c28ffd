import { MachineStatuses } from "@beta9/protocol";
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { MachineRegistry } from "../machines/registry.ts";

/** Per-model inference metrics, recorded by the OpenAI and Ollama routes. */
export interface InferenceMetrics {
  requests: Counter<"model" | "status">;
  duration: Histogram<"model">;
  timeToFirstToken: Histogram<"model">;
}

/** The gateway's Prometheus metrics, on a registry of its own (tests start several gateways). */
export function installMetrics(
  app: FastifyInstance,
  registry: MachineRegistry,
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

  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });

  const inference: InferenceMetrics = {
    requests: new Counter({
      name: "beta9_inference_requests_total",
      help: "Inference requests answered, by model and status code.",
      labelNames: ["model", "status"] as const,
      registers: [reg],
    }),
    duration: new Histogram({
      name: "beta9_inference_duration_seconds",
      help: "Time from receiving an inference request to the end of its answer.",
      labelNames: ["model"] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [reg],
    }),
    timeToFirstToken: new Histogram({
      name: "beta9_inference_time_to_first_byte_seconds",
      help: "Time from receiving an inference request to the first byte of its answer (the first token, when streamed).",
      labelNames: ["model"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [reg],
    }),
  };

  app.get("/metrics", async (_req, reply) => {
    return reply.header("content-type", reg.contentType).send(await reg.metrics());
  });
  return { registry: reg, inference };
}
