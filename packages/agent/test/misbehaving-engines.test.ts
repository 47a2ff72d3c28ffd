import { chmodSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  type GatewayProc,
  type ModelAgent,
  processAlive,
  startGateway,
  startModelAgent,
  tempDir,
  testModelPath,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * No single bad engine ends the agent. Stand-ins for `ollama serve` and llama-server (real processes
 * the agent starts from its PATH, answering as real servers were recorded to) misbehave: an answer
 * whose body the agent has no use for arrives with a close (Node's bundled undici threw an
 * uncatchable assertion there, #5360), bytes that are not HTTP, a body cut halfway, a flood that
 * closes at once, and no answer at all. Each fails that request only; the agent answers on.
 */

const standIns = resolve(import.meta.dirname, "../src/engines/testing");
let gw: GatewayProc;
let worker: ModelAgent;

beforeAll(async () => {
  const bin = tempDir("b9-bad-engines-");
  const stubs: [string, string][] = [
    ["ollama", "fake-ollama.ts"],
    ["llama-server", "fake-llama-server.ts"],
  ];
  for (const [name, fixture] of stubs) {
    writeFileSync(
      join(bin, name),
      `#!/bin/sh\nexec '${process.execPath}' '${join(standIns, fixture)}' "$@"\n`,
    );
    chmodSync(join(bin, name), 0o755);
  }
  gw = await startGateway();
  worker = await startModelAgent(gw, {
    env: { PATH: `${bin}:${process.env.PATH}`, FAKE_OLLAMA_BLOB_ANSWER_BYTES: String(256 * 1024) },
  });
  const pulled = await worker.control("POST", "/inference/pull", {
    model: "smollm2",
    source: testModelPath(),
  });
  expect(pulled.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

async function agentAnswers(): Promise<void> {
  expect(processAlive(worker.agent.proc.child.pid ?? 0)).toBe(true);
  expect((await fetch(`${worker.agent.controlUrl}/health`)).status).toBe(200);
}

function ask(content: string, signal?: AbortSignal): Promise<Response> {
  return fetch(`${worker.agent.controlUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${worker.token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "smollm2", messages: [{ role: "user", content }] }),
    ...(signal ? { signal } : {}),
  });
}

describe("misbehaving engines (stand-ins answering as recorded)", () => {
  it("Ollama (stand-in) answers the model upload with a body and a close: the start goes on, the agent lives", async () => {
    const started = await worker.control("POST", "/inference/start", { model: "smollm2", engine: "ollama" });
    expect(started.status, await started.clone().text()).toBe(200);
    await agentAnswers();
    await worker.control("POST", "/inference/stop", {});
  });

  it("llama-server (stand-in) answering garbage, cut short, a flood or nothing fails that request only", async () => {
    const started = await worker.control("POST", "/inference/start", {
      model: "smollm2",
      engine: "llamacpp",
    });
    expect(started.status, await started.clone().text()).toBe(200);

    const garbage = await ask("garbage");
    expect(garbage.status).toBe(502);
    expect(((await garbage.json()) as { error: { code: string } }).error.code).toBe("engine_unavailable");

    const cut = await ask("cut");
    expect(cut.status).toBe(200);
    await expect(cut.text()).rejects.toThrow();

    // Read nothing for a while: the agent's writes back up, its read of the engine pauses, the close
    // comes. The answer ends whole or broken (undici may drop what it had paused on), never short.
    const flood = await ask("flood");
    expect(flood.status).toBe(200);
    const reader = flood.body?.getReader();
    await new Promise((r) => setTimeout(r, 500));
    let bytes = 0;
    const ended = await (async () => {
      for (;;) {
        const { done, value } = (await reader?.read()) ?? { done: true, value: undefined };
        if (done) return "whole";
        bytes += value.length;
      }
    })().catch(() => "broken");
    if (ended === "whole") expect(bytes).toBe(4 * 1024 * 1024);

    await expect(ask("hang", AbortSignal.timeout(1_000))).rejects.toThrow();
    await agentAnswers();
    await worker.control("POST", "/inference/stop", {});
  });
});
