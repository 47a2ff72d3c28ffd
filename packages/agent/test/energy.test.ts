import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AGENT_ENERGY_TRAILER, type EnergyReading } from "@beta9/protocol";
import { type GatewayProc, type ModelAgent, startGateway, startModelAgent } from "@beta9/test-utils";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assignment, finalState, submit } from "./jobs-helpers.ts";

/*
 * Energy on a real agent with the builtin engine and SmolLM2: no power counter is readable (RAPL is
 * pointed at an empty folder, as on most VMs and on any machine where energy_uj is root-only), so
 * answers and jobs are measured from their processes' real CPU time × the CPU's rating: util_tdp.
 */

let gw: GatewayProc;
let worker: ModelAgent;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, {
    name: "energy",
    env: {
      B9AGENT_POWERCAP_ROOT: mkdtempSync(join(tmpdir(), "b9-no-rapl-")),
      B9AGENT_JOB_RUNNER: "native",
    },
  });
  await worker.serve("smollm2");
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

async function chat(opts: { stream: boolean; trailers: boolean }) {
  const res = await request(`${worker.agent.controlUrl}/v1/chat/completions`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${worker.token}`,
      "content-type": "application/json",
      ...(opts.trailers ? { te: "trailers" } : {}),
    },
    body: JSON.stringify({
      model: "smollm2",
      messages: [{ role: "user", content: "Tell me about lighthouses." }],
      max_tokens: 40,
      temperature: 0,
      stream: opts.stream,
    }),
  });
  const text = await res.body.text();
  const trailer = res.trailers[AGENT_ENERGY_TRAILER];
  return {
    status: res.statusCode,
    text,
    energy: typeof trailer === "string" ? (JSON.parse(trailer) as EnergyReading) : undefined,
  };
}

function expectCpuTimeEnergy(energy: EnergyReading | undefined) {
  expect(energy).toMatchObject({ method: "util_tdp", confidence: "low" });
  expect(energy!.wh).toBeGreaterThan(0);
  // A generation of 40 tokens on a small model is far below a watt-hour.
  expect(energy!.wh).toBeLessThan(1);
  expect(energy!.sources[0]).toMatch(/^tdp-(table|default):/);
}

describe("energy of answers and jobs", () => {
  it("a non-streamed answer arrives whole with its energy, from the engine's real CPU time, as a trailer", async () => {
    const answer = await chat({ stream: false, trailers: true });
    expect(answer.status).toBe(200);
    const body = JSON.parse(answer.text) as { choices: { message: { content: string } }[] };
    expect(body.choices[0]!.message.content.length).toBeGreaterThan(0);
    expectCpuTimeEnergy(answer.energy);
  }, 120_000);

  it("a streamed answer ends with [DONE] and then carries its energy", async () => {
    const answer = await chat({ stream: true, trailers: true });
    expect(answer.status).toBe(200);
    expect(answer.text.trim().endsWith("data: [DONE]")).toBe(true);
    expectCpuTimeEnergy(answer.energy);
  }, 120_000);

  it("a caller that does not take trailers gets the answer as before, without one", async () => {
    const answer = await chat({ stream: false, trailers: false });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toHaveProperty("choices");
    expect(answer.energy).toBeUndefined();
  }, 120_000);

  it("/metrics counts the answers' and the whole machine's energy by method", async () => {
    const text = await (await worker.control("GET", "/metrics")).text();
    const value = (name: string) =>
      Number(
        text
          .split("\n")
          .find((l) => l.startsWith(`${name}{method="util_tdp"}`))
          ?.split(" ")[1],
      );
    expect(value("beta9_agent_energy_wh_total")).toBeGreaterThan(0);
    // The machine's figure holds the engine's and everything else that ran meanwhile.
    expect(value("beta9_agent_machine_energy_wh_total")).toBeGreaterThan(
      value("beta9_agent_energy_wh_total"),
    );
  });

  it("/status shows the machine's power and how it was measured", async () => {
    const status = (await (await worker.control("GET", "/status")).json()) as {
      power?: { watts: number; method: string };
    };
    expect(status.power?.method).toBe("util_tdp");
    expect(status.power?.watts).toBeGreaterThanOrEqual(0);
  });

  it("a job's last state carries the energy of its own processes' CPU time", async () => {
    const run = await submit(
      worker,
      assignment("job-energy-1", {
        command: ["sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo done"],
      }),
    );
    const last = finalState(await run.done);
    expect(last).toMatchObject({ state: "SUCCEEDED", exit_code: 0 });
    expectCpuTimeEnergy(last.energy);
  }, 120_000);
});
