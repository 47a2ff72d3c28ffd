import {
  type Cluster,
  type ClusterGateway,
  clusterUnsupported,
  GATEWAY_ARGS,
  inferenceKey,
  testModelPath,
  type Worker,
  waitFor,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, expect } from "vitest";

/*
 * What the cluster tests share: a cluster per describe block with a gateway on short liveness
 * settings, its workers and a client, and ways to ask what users and operators see.
 */

export { GATEWAY_ARGS, LIVENESS } from "@beta9/test-utils";

/** Why the cluster tests cannot run here (they need root for network namespaces), said once; undefined where they can. */
export function clusterSkipReason(): string | undefined {
  const reason = clusterUnsupported();
  if (reason) console.warn(`skipping the cluster fault tests: ${reason}`);
  return reason;
}

/**
 * The cluster of one describe block: `start` builds it before the tests (assigning what `cluster`
 * returns first, so a failed start is still torn down); `stop`, then the cluster's destroy, run after
 * them; the cluster's timeline is printed when the start or a test fails.
 */
export function useCluster(
  cluster: () => Cluster | undefined,
  start: () => Promise<void>,
  stop?: () => Promise<unknown>,
): void {
  const setup = showTimelineOnFailure(cluster);
  beforeAll(() => setup(start), 150_000);
  afterAll(async () => {
    await stop?.();
    await cluster()?.destroy();
  });
}

/** A gateway with liveness settings for tests, every worker host joined to it, and a client for it. */
export async function startServing(
  cluster: Cluster,
  opts: {
    gateway?: Parameters<Cluster["startGateway"]>[0];
    /** What `b9agent init` gets on the i-th worker host. */
    workerArgs?: (i: number) => string[];
    /** The i-th worker's country, bound by its join token (the operator's word). */
    workerCountry?: (i: number) => string;
  } = {},
): Promise<{ gw: ClusterGateway; workers: Worker[]; client: OpenAI }> {
  const gw = await cluster.startGateway({ args: GATEWAY_ARGS, ...opts.gateway });
  const workers = await Promise.all(
    cluster.workerHosts.map((h, i) => {
      const country = opts.workerCountry?.(i);
      return cluster.joinWorker(gw, h, { args: opts.workerArgs?.(i) ?? [], ...(country ? { country } : {}) });
    }),
  );
  return { gw, workers, client: await openaiClient(gw) };
}

export type MachineStatus = { id: string; name: string; status: string };

export async function machines(gw: ClusterGateway): Promise<MachineStatus[]> {
  return (await gw.api<{ machines: MachineStatus[] }>("GET", "/api/v1/machines")).body.machines;
}

export async function machineStatus(gw: ClusterGateway, id: string): Promise<string> {
  return (await gw.api<MachineStatus>("GET", `/api/v1/machines/${id}`)).body.status;
}

/** What the agent itself says it runs (the truth on the machine, not the gateway's belief). */
export async function agentModels(worker: Worker): Promise<{ name: string; state: string }[]> {
  const res = await worker.control("GET", "/inference/status");
  if (res.status !== 200) throw new Error(`${worker.name} answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { models: { name: string; state: string }[] }).models;
}

/** The workers whose agent runs `model` ready now. */
export async function runningOn(workers: Worker[], model: string): Promise<string[]> {
  const out: string[] = [];
  for (const w of workers) {
    if (!w.agent || w.agent.proc.child.exitCode !== null || w.agent.proc.child.signalCode !== null) continue;
    const models = await agentModels(w).catch(() => []);
    if (models.some((m) => m.name === model && m.state === "ready")) out.push(w.name);
  }
  return out.sort();
}

/** An API key with the inference scope and the real openai client on it, from the client host. */
export async function openaiClient(gw: ClusterGateway): Promise<OpenAI> {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: await inferenceKey(gw), maxRetries: 0 });
}

/** A deployment of the test model, kept loaded (long idle time) with the given replicas and placement. */
export function testDeployment(name: string, source: string, over: Record<string, unknown> = {}) {
  return { name, source, idle_seconds: 3600, context_size: 1024, ...over };
}

/** Deploy the test model as `name` (see testDeployment); the gateway must accept it. */
export async function deployTestModel(gw: ClusterGateway, name: string, over: Record<string, unknown> = {}) {
  expect(
    (await gw.api("POST", "/api/v1/deployments", testDeployment(name, testModelPath(), over))).status,
  ).toBe(201);
}

/** Wait until exactly `count` of `workers` run `model` ready. */
export async function waitForRunning(
  workers: Worker[],
  model: string,
  count: number,
  what = `${model} on ${count} machine(s)`,
): Promise<void> {
  await waitFor(async () => (await runningOn(workers, model)).length === count, {
    what,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
}

/** A streamed chat read to its end in the background: its chunks, and how it ended. */
export interface StreamWatch {
  chunks: number;
  firstChunkAt: number | undefined;
  done: Promise<{ ok: true; finish: string | null } | { ok: false; error: Error; at: number }>;
}

export function watchStream(client: OpenAI, model: string, maxTokens = 300): StreamWatch {
  const watch: StreamWatch = { chunks: 0, firstChunkAt: undefined, done: undefined as never };
  watch.done = (async () => {
    let finish: string | null = null;
    try {
      const stream = await client.chat.completions.create({
        model,
        stream: true,
        max_tokens: maxTokens,
        temperature: 0,
        messages: [{ role: "user", content: "Write a long story about a dragon who learns to cook." }],
      });
      for await (const chunk of stream) {
        watch.chunks++;
        watch.firstChunkAt ??= Date.now();
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      return { ok: true as const, finish };
    } catch (err) {
      return { ok: false as const, error: err as Error, at: Date.now() };
    }
  })();
  return watch;
}

export async function ask(client: OpenAI, model: string, question = "What is the capital of France?") {
  const chat = await client.chat.completions.create({
    model,
    max_tokens: 8,
    temperature: 0,
    messages: [{ role: "user", content: question }],
  });
  return chat.choices[0]?.message.content ?? "";
}

/** Every status the gateway shows for a machine, polled from now until stop(), with when it was first seen. */
export function watchStatus(gw: ClusterGateway, id: string) {
  const seen: { status: string; at: number }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const status = await machineStatus(gw, id).catch(() => undefined);
      if (status && seen.at(-1)?.status !== status) seen.push({ status, at: Date.now() });
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    seen,
    /** When the machine was first seen in `status`, or undefined. */
    when: (status: string) => seen.find((s) => s.status === status)?.at,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** When a test (or its setup, via `setup`) fails, print the cluster's merged logs: faults are timing stories. */
export function showTimelineOnFailure(cluster: () => Cluster | undefined) {
  afterEach((ctx) => {
    if (ctx.task.result?.state === "fail") console.error(`cluster timeline:\n${cluster()?.timeline()}`);
  });
  return async <T>(setup: () => Promise<T>): Promise<T> => {
    try {
      return await setup();
    } catch (err) {
      console.error(`cluster timeline:\n${cluster()?.timeline()}`);
      throw err;
    }
  };
}
