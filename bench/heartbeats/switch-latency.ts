/**
 * What the first request to an idle agent pays for its channel's switch to HTTP/2 (agent protocol 2).
 * A real b9gateway and a real b9agent serving the test model (SmolLM2, kept loaded by a deployment
 * with one replica), the gateway told to take a channel back to its idle form after 1 s without a
 * request. Each round waits for the channel to be idle again, then sends two one-token chats back to
 * back: the first switches the channel, the second finds it HTTP/2. Also prints the gateway's own
 * figure for the switch (from its switch line to the agent's answer, `switch_ms` in its log).
 * `--control`: the same rounds with a channel that never goes idle (a pause of the same length
 * instead), to tell the switch from what any request after a pause costs.
 *
 *   BETA9_TEST_MODEL=$(scripts/fetch-test-model) npx node bench/heartbeats/switch-latency.ts [--rounds 20] [--control]
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { inferenceKey, initAgent, startAgent, startGateway, testModelPath, waitFor } from "@beta9/test-utils";
import YAML from "yaml";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "20" }, control: { type: "boolean", default: false } },
});
const rounds = Number(values.rounds);
const control = values.control;

const gw = await startGateway({
  args: ["--heartbeat-interval", "1s", "--channel-idle-after", control ? "1h" : "1s"],
});
const path = await initAgent(gw, { name: "switch-bench" });
const cfg = YAML.parse(readFileSync(path, "utf8"));
cfg.models = { allowed_dirs: [dirname(testModelPath())] };
writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
const agent = await startAgent(path);
const key = await inferenceKey(gw);

const count = (logs: Record<string, unknown>[], msg: string) => logs.filter((e) => e.msg === msg).length;
const IDLE = "agent channel idle: the agent is asked for an idle one";

async function chat(): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "smollm2",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 1,
      temperature: 0,
    }),
  });
  await res.text();
  if (res.status !== 200) throw new Error(`chat answered ${res.status}`);
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))]!;

try {
  const dep = await gw.api("POST", "/api/v1/deployments", {
    name: "smollm2",
    source: testModelPath(),
    min_replicas: 1,
    max_replicas: 1,
    context_size: 2048,
  });
  if (dep.status !== 201) throw new Error(`deployment answered ${dep.status}`);
  await waitFor(async () => (await chat().catch(() => -1)) > 0, {
    what: "a first answer",
    timeoutMs: 120_000,
  });
  const first: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const idled = count(gw.proc.logs(), IDLE);
    const connected = count(agent.proc.logs(), "connected to gateway");
    // Idle again: the gateway asked, and the agent's new (idle) channel is up.
    if (control) await new Promise((r) => setTimeout(r, 1_200));
    else
      await waitFor(
        () =>
          count(gw.proc.logs(), IDLE) > idled && count(agent.proc.logs(), "connected to gateway") > connected,
        { what: "the channel idle again", timeoutMs: 30_000, intervalMs: 20 },
      );
    // Then a while later, as a request comes: not in step with the new channel's first beat, which
    // samples the machine's usage (GPU tools) and would be timed with the request.
    await new Promise((r) => setTimeout(r, 700));
    first.push(await chat());
    warm.push(await chat());
  }
  const switches = gw.proc
    .logs()
    .filter((e) => e.msg === "agent channel switched to HTTP/2")
    .map((e) => Number(e.switch_ms));
  const f = (ms: number) => `${ms.toFixed(2)} ms`;
  const diffs = first.map((ms, i) => ms - warm[i]!);
  process.stdout.write(
    `${control ? "control (the channel stays HTTP/2), " : ""}${rounds} rounds, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}\n` +
      `first request ${control ? "after the pause:       " : "on an idle channel:    "} p50 ${f(median(first))}, p90 ${f(p90(first))}\n` +
      `next request (HTTP/2 channel):          p50 ${f(median(warm))}, p90 ${f(p90(warm))}\n` +
      `first - next, per round:                p50 ${f(median(diffs))}, p90 ${f(p90(diffs))}\n` +
      `gateway's switch_ms (switch line → agent's answer), ${switches.length} switches: p50 ${f(median(switches))}, p90 ${f(p90(switches))}\n`,
  );
} finally {
  await agent.proc.stop();
  await gw.proc.stop();
}
