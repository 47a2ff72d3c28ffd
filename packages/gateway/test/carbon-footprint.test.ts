import { execFile } from "node:child_process";
import http from "node:http";
import { createServer } from "node:net";
import { promisify } from "node:util";
import { ENERGY_METHODS } from "@beta9/protocol";
import {
  BIN,
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
  tempDir,
  waitFor,
} from "@beta9/test-utils";
import { Ollama } from "ollama";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobsClient } from "./jobs-client.ts";

/*
 * An answer's footprint, end to end: the real gateway, a real agent on a machine the operator set in
 * FR, the builtin engine with SmolLM2. The agent sends its energy as a trailer; the gateway applies
 * FR's grid intensity and answers with it. The gateway's live intensity source is down (a port
 * nobody listens on), so it uses the shipped table's figure for FR (Ember 2023: 56 gCO2e/kWh), labelled low.
 */

const FR_G_PER_KWH = 56;

let gw: GatewayProc;
let worker: ModelAgent;
let key: string;
let client: OpenAI;

beforeAll(async () => {
  const downPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  gw = await startGateway({ args: ["--carbon-intensity-url", `http://127.0.0.1:${downPort}/v3/{zone}`] });
  // Jobs with the native runner: the sandboxes are the agent's own tests.
  worker = await startModelAgent(gw, {
    name: "fr-worker",
    country: "FR",
    env: { B9AGENT_JOB_RUNNER: "native" },
  });
  await worker.serve("smollm2");
  key = await inferenceKey(gw);
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
}, 240_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

const ask = {
  model: "smollm2",
  messages: [{ role: "user" as const, content: "Name three colours." }],
  max_tokens: 16,
  temperature: 0,
};

interface Beta9Field {
  energy_wh: number;
  energy_method: string;
  co2e_g: number;
  grid_zone: string;
  grid_intensity_g_per_kwh: number;
  intensity_source: string;
  intensity_confidence: string;
}

describe("an answer's energy and carbon", () => {
  it("a whole answer's headers carry its Wh, method and gCO2e at FR's intensity (the table's, labelled low: the live source is down)", async () => {
    const { data, response } = await client.chat.completions.create(ask).withResponse();
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    const wh = Number(response.headers.get("x-beta9-energy-wh"));
    expect(wh).toBeGreaterThan(0);
    expect(ENERGY_METHODS).toContain(response.headers.get("x-beta9-energy-method"));
    const co2e = Number(response.headers.get("x-beta9-co2e-g"));
    expect(co2e).toBeCloseTo((wh * FR_G_PER_KWH) / 1000, 4);
    expect(response.headers.get("x-beta9-carbon-intensity")).toBe(
      `${FR_G_PER_KWH} gCO2e/kWh; zone=FR; source=ember:2023; confidence=low; pue=1`,
    );
  }, 120_000);

  it("a stream's usage chunk carries it as `beta9` (the openai client still parses the stream), and its HTTP trailers too", async () => {
    const stream = await client.chat.completions.create({
      ...ask,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let beta9: Beta9Field | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) beta9 = (chunk as unknown as { beta9?: Beta9Field }).beta9;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(beta9).toMatchObject({
      grid_zone: "FR",
      grid_intensity_g_per_kwh: FR_G_PER_KWH,
      intensity_confidence: "low",
    });
    expect(beta9!.energy_wh).toBeGreaterThan(0);
    expect(beta9!.co2e_g).toBeCloseTo((beta9!.energy_wh * FR_G_PER_KWH) / 1000, 9);

    // Node's HTTP client reads trailers (fetch does not): the same figures after the last event.
    const trailers = await new Promise<http.IncomingMessage["trailers"]>((resolve, reject) => {
      const req = http.request(
        `${gw.url}/v1/chat/completions`,
        { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" } },
        (res) => {
          expect(res.headers.trailer).toContain("x-beta9-co2e-g");
          res.resume();
          res.on("end", () => resolve(res.trailers));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(JSON.stringify({ ...ask, stream: true }));
    });
    expect(Number(trailers["x-beta9-energy-wh"])).toBeGreaterThan(0);
    expect(Number(trailers["x-beta9-co2e-g"])).toBeCloseTo(
      (Number(trailers["x-beta9-energy-wh"]) * FR_G_PER_KWH) / 1000,
      4,
    );
  }, 120_000);

  it("Ollama's done object carries it as `beta9`, streamed or not (the ollama client still parses it); a whole answer's headers too", async () => {
    const ollama = new Ollama({ host: gw.url, headers: { Authorization: `Bearer ${key}` } });
    const req = { model: "smollm2", messages: ask.messages, options: { num_predict: 16, temperature: 0 } };
    const whole = await ollama.chat(req);
    expect(whole.message.content.length).toBeGreaterThan(0);
    const field = (whole as unknown as { beta9?: Beta9Field }).beta9;
    expect(field).toMatchObject({ grid_zone: "FR", grid_intensity_g_per_kwh: FR_G_PER_KWH });
    expect(field!.co2e_g).toBeCloseTo((field!.energy_wh * FR_G_PER_KWH) / 1000, 9);
    let last: Beta9Field | undefined;
    for await (const part of await ollama.chat({ ...req, stream: true }))
      if (part.done) last = (part as unknown as { beta9?: Beta9Field }).beta9;
    expect(last?.energy_wh).toBeGreaterThan(0);
    const res = await fetch(`${gw.url}/api/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ ...req, stream: false }),
    });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get("x-beta9-co2e-g"))).toBeCloseTo(
      (Number(res.headers.get("x-beta9-energy-wh")) * FR_G_PER_KWH) / 1000,
      4,
    );
  }, 120_000);

  it("usage and the carbon report show Wh and gCO2e; the report's totals are the sums of its rows", async () => {
    const usage = await gw.api<{
      groups: { group: string; energy_wh: number | null; co2e_g: number | null }[];
    }>("GET", "/api/v1/usage?group_by=machine");
    const mine = usage.body.groups.find((g) => g.group === worker.machineId);
    expect(mine?.energy_wh).toBeGreaterThan(0);
    expect(mine?.co2e_g).toBeCloseTo((mine!.energy_wh! * FR_G_PER_KWH) / 1000, 6);

    for (const by of ["model", "key", "machine"]) {
      const report = await gw.api<{
        rows: { co2e_g: number; energy_wh: number; count: number; kind: string }[];
        totals: {
          co2e_g: number;
          energy_wh: number;
          answers: number;
          coverage: { low: number };
          sci_g_per_1k_tokens: number;
        };
      }>("GET", `/api/v1/carbon/report?by=${by}`);
      expect(report.status).toBe(200);
      const { rows, totals } = report.body;
      expect(totals.co2e_g).toBeGreaterThan(0);
      expect(totals.co2e_g).toBeCloseTo(
        rows.reduce((a, r) => a + r.co2e_g, 0),
        9,
      );
      expect(totals.energy_wh).toBeCloseTo(
        rows.reduce((a, r) => a + r.energy_wh, 0),
        9,
      );
      expect(totals.answers).toBe(rows.filter((r) => r.kind === "answers").reduce((a, r) => a + r.count, 0));
      // Every figure used the table standing in for a live source that is down.
      expect(totals.coverage.low).toBe(1);
      expect(totals.sci_g_per_1k_tokens).toBeGreaterThan(0);
    }

    // What a person sees: b9 carbon report as CSV, the last row the totals.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [BIN.cli, "carbon", "report", "--by", "machine", "--format", "csv"],
      {
        env: {
          ...process.env,
          BETA9_GATEWAY: gw.url,
          BETA9_API_KEY: gw.adminKey,
          BETA9_CLI_CONFIG: "/nonexistent/cli.json",
        },
      },
    );
    const lines = stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^GROUP,NAME,KIND,COUNT/);
    expect(lines.find((l) => l.startsWith(`${worker.machineId},fr-worker,answers,`))).toBeDefined();
    expect(lines.at(-1)).toMatch(/^TOTAL,/);
  }, 120_000);

  it("a job's footprint (from the energy on its run's last state) is in the report, with SCI per job", async () => {
    const jobs = jobsClient(
      () => gw,
      () => gw.adminKey,
    );
    const made = await jobs.submit({
      // Long enough to be seen running: a job of a few tens of ms on a loaded machine can be metered 0 Wh.
      command: ["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo done"],
    });
    expect(made.status).toBe(201);
    await jobs.until(made.body.id, ["SUCCEEDED"], { timeoutMs: 120_000 });
    await waitFor(
      async () => {
        const report = await gw.api<{
          rows: {
            kind: string;
            measured: number;
            co2e_g: number;
            energy_wh: number;
            sci_g_per_job: number | null;
          }[];
          totals: { jobs: number; co2e_g: number; sci_g_per_job: number | null };
        }>("GET", "/api/v1/carbon/report?by=machine");
        const run = report.body.rows.find((r) => r.kind === "jobs");
        if (!run) return false;
        expect(run.measured).toBe(1);
        expect(run.energy_wh).toBeGreaterThan(0);
        expect(run.co2e_g).toBeCloseTo((run.energy_wh * FR_G_PER_KWH) / 1000, 9);
        expect(run.sci_g_per_job).toBeCloseTo(run.co2e_g, 12);
        expect(report.body.totals.co2e_g).toBeCloseTo(
          report.body.rows.reduce((a, r) => a + r.co2e_g, 0),
          9,
        );
        return true;
      },
      { what: "the job's run in the carbon report", timeoutMs: 30_000 },
    );
    // The job's own usage says the same of its run.
    const usage = (await jobs.get(`/api/v1/jobs/${made.body.id}/usage`).then((r) => r.json())) as {
      runs: { energy_wh: number | null; energy_method: string | null; co2e_g: number | null }[];
    };
    expect(usage.runs).toHaveLength(1);
    expect(usage.runs[0]!.energy_wh).toBeGreaterThan(0);
    expect(usage.runs[0]!.energy_method).toBe("util_tdp");
    expect(usage.runs[0]!.co2e_g).toBeCloseTo((usage.runs[0]!.energy_wh! * FR_G_PER_KWH) / 1000, 9);
  }, 180_000);

  it("Prometheus counts Wh and gCO2e by model, machine and method", async () => {
    await waitFor(
      async () => {
        const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.adminKey}` } });
        const text = await res.text();
        return (
          /beta9_inference_energy_wh_total\{model="smollm2",machine="[^"]+",method="\w+"\} [0-9.e-]+/.test(
            text,
          ) &&
          /beta9_inference_co2e_grams_total\{model="smollm2",machine="[^"]+",method="\w+"\} [0-9.e-]+/.test(
            text,
          )
        );
      },
      { what: "energy and carbon counters on /metrics" },
    );
  });
});

it("refuses a --carbon-intensity-url that is not an http(s) URL naming the zone, saying what to give", async () => {
  for (const [url, says] of [
    ["not a url", /not a URL/],
    ["ftp://example.org/{zone}", /http or https/],
    ["https://example.org/latest", /\{zone\}/],
  ] as const) {
    // A gateway that took it would listen: its own folder and port, and killed after 60 s.
    const run = promisify(execFile)(
      process.execPath,
      [
        BIN.gateway,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        tempDir("b9-gw-"),
        "--carbon-intensity-url",
        url,
      ],
      { timeout: 60_000 },
    );
    await expect(run).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(says) });
  }
});
