import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ModelServer, startModelServer } from "./model-server.ts";

/*
 * The gateway's Prometheus metrics, scraped after real requests through both APIs to a real agent: the
 * cold-start and replica gauges while a model loads (its download held back by the test's file
 * server), then the per-model request, latency, time-to-first-token and token figures.
 */

let gw: GatewayProc;
let worker: ModelAgent;
let files: ModelServer;
let key: string;

beforeAll(async () => {
  files = await startModelServer(testModelPath());
  gw = await startGateway();
  worker = await startModelAgent(gw);
  key = await inferenceKey(gw);
  const dep = await gw.api("POST", "/api/v1/deployments", {
    name: "cold",
    source: files.url("cold.gguf"),
    context_size: 2048,
  });
  expect(dep.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
  await files?.close();
});

const openai = () => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
const ollama = () => new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${key}` } });
const hi = [{ role: "user" as const, content: "What is the capital of France?" }];

async function scrape(): Promise<string> {
  const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.adminKey}` } });
  expect(res.status).toBe(200);
  return res.text();
}

/** The value of one series, e.g. `beta9_replicas{model="cold",state="ready"}`; undefined when absent. */
function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("gateway metrics", () => {
  it("counts requests waiting on a cold start and replicas by state while a model loads", async () => {
    const release = files.hold();
    const answer = (async () => {
      let text = "";
      const stream = await openai().chat.completions.create({
        model: "cold",
        messages: hi,
        max_tokens: 8,
        stream: true,
      });
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      return text;
    })();
    let during = "";
    await waitFor(
      async () => {
        during = await scrape();
        return value(during, 'beta9_cold_start_waiting_requests{model="cold"}') === 1;
      },
      { what: "the cold start to show in /metrics" },
    );
    expect(value(during, 'beta9_replicas{model="cold",state="loading"}')).toBe(1);
    expect(value(during, 'beta9_replicas{model="cold",state="ready"}')).toBeUndefined();
    release();

    expect((await answer).length).toBeGreaterThan(0);
    const after = await scrape();
    expect(value(after, 'beta9_cold_start_waiting_requests{model="cold"}')).toBe(0);
    expect(value(after, 'beta9_replicas{model="cold",state="ready"}')).toBe(1);
    expect(value(after, 'beta9_replicas{model="cold",state="loading"}')).toBeUndefined();
    expect(value(after, 'beta9_machines{status="READY"}')).toBe(1);
  }, 60_000);

  it("records requests, latency, first token and tokens for the OpenAI and Ollama APIs alike", async () => {
    const before = await scrape();
    const completion: number[] = [];

    const stream = await openai().chat.completions.create({
      model: "cold",
      messages: hi,
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) if (chunk.usage) completion.push(chunk.usage.completion_tokens);
    const whole = await openai().chat.completions.create({ model: "cold", messages: hi, max_tokens: 6 });
    completion.push(whole.usage!.completion_tokens);
    let last: { eval_count: number } | undefined;
    for await (const part of await ollama().chat({
      model: "cold",
      messages: hi,
      options: { num_predict: 7 },
      stream: true,
    }))
      last = part;
    completion.push(last!.eval_count);
    const generated = await ollama().generate({
      model: "cold",
      prompt: "Paris is",
      options: { num_predict: 5 },
    });
    completion.push(generated.eval_count);
    await expect(ollama().chat({ model: "nope", messages: hi })).rejects.toMatchObject({ status_code: 404 });
    expect(completion).toHaveLength(4);
    expect(completion.every((n) => n >= 2)).toBe(true);

    const after = await scrape();
    const moved = (series: string) => (value(after, series) ?? 0) - (value(before, series) ?? 0);
    expect(moved('beta9_inference_requests_total{model="cold",status="200"}')).toBe(4);
    expect(moved('beta9_inference_requests_total{model="unknown",status="404"}')).toBe(1);
    expect(moved('beta9_inference_duration_seconds_count{model="cold"}')).toBe(4);
    expect(moved('beta9_inference_time_to_first_byte_seconds_count{model="cold"}')).toBe(4);
    expect(moved('beta9_inference_time_to_first_byte_seconds_sum{model="cold"}')).toBeGreaterThan(0);
    // The counter moves by exactly the tokens the clients were told they got.
    expect(moved('beta9_inference_tokens_total{model="cold",kind="completion"}')).toBe(
      completion.reduce((a, b) => a + b, 0),
    );
    expect(moved('beta9_inference_tokens_total{model="cold",kind="prompt"}')).toBeGreaterThan(0);
    expect(moved('beta9_inference_completion_tokens_per_second_count{model="cold"}')).toBe(4);
    expect(moved('beta9_inference_completion_tokens_per_second_sum{model="cold"}')).toBeGreaterThan(0);
  }, 60_000);
});
