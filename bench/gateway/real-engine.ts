/**
 * Tokens/s on the real engine, through the gateway against the engine directly: a real b9gateway and
 * b9agent, the agent serving the test model (SmolLM2, BETA9_TEST_MODEL) on its builtin engine. Each
 * round streams the same chat completion (temperature 0, fixed seed) once straight to the engine's
 * loopback port and once through the gateway (client → gateway → agent channel → agent → engine), the
 * order alternating. Prints decode tokens/s, time to first token and end-to-end tokens/s for both, the
 * ratio gateway/direct (of the medians, and the median of each round's ratio), and the goal.
 * See README.md beside this file.
 *
 *   npx node bench/gateway/real-engine.ts [--rounds 10] [--warmup 2] [--max-tokens 64]
 */
import { parseArgs } from "node:util";
import { testModelPath, waitFor } from "@beta9/test-utils";
import { Agent } from "undici";
import {
  builtinEngine,
  cpuMs,
  decodeTps,
  HOST,
  killOnExit,
  loadavg1,
  machineLine,
  median,
  ms,
  out,
  ratio,
  runMain,
  type StreamedAnswer,
  startBeta9,
  streamChat,
  table,
  watchdog,
} from "./common.ts";

const MODEL = "smollm2";
const PROMPT = "Write a story about a lighthouse keeper who finds a message in a bottle.";
const TPS_RATIO_GOAL = 0.98;

function options() {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "10" },
      warmup: { type: "string", default: "2" },
      "max-tokens": { type: "string", default: "64" },
      seed: { type: "string", default: "42" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out("usage: npx node bench/gateway/real-engine.ts [--rounds 10] [--warmup 2] [--max-tokens 64]\n");
    process.exit(0);
  }
  const o = {
    rounds: Number(values.rounds),
    warmup: Number(values.warmup),
    maxTokens: Number(values["max-tokens"]),
    seed: Number(values.seed),
  };
  if (!Number.isInteger(o.rounds) || o.rounds < 3 || o.rounds > 200) throw new Error("--rounds: 3 to 200");
  if (!Number.isInteger(o.warmup) || o.warmup < 0 || o.warmup > 20) throw new Error("--warmup: 0 to 20");
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 8 || o.maxTokens > 2048)
    throw new Error("--max-tokens: 8 to 2048");
  return o;
}

type Path = "direct" | "gateway";

async function main(): Promise<void> {
  const o = options();
  watchdog(20 * 60_000);
  out(`# Real engine through the gateway: ${machineLine()}\n`);
  out(`model ${testModelPath()} on the builtin engine; ${o.maxTokens} tokens a request\n\n`);

  const b9 = await startBeta9({ env: { BETA9_LOG_LEVEL: "info" } });
  try {
    await b9.control("POST", "/inference/pull", { model: MODEL, source: testModelPath() });
    await b9.control("POST", "/inference/start", { model: MODEL, engine: "builtin", context_size: 2048 });
    const engine = builtinEngine(b9.agent.proc.child.pid!);
    if (!engine) throw new Error("the agent runs no builtin engine");
    killOnExit(engine.pid);
    await waitFor(
      async () => {
        const r = await b9.gw.api<{ data: { id: string }[] }>("GET", "/v1/models", undefined, b9.key);
        return r.status === 200 && r.body.data.some((m) => m.id === MODEL);
      },
      { timeoutMs: 30_000, what: "the gateway to list the model" },
    );

    const dispatcher = new Agent({ keepAliveTimeout: 60_000, connections: 2 });
    const body = {
      model: MODEL,
      messages: [{ role: "user", content: PROMPT }],
      temperature: 0,
      seed: o.seed,
      max_tokens: o.maxTokens,
    };
    const url: Record<Path, string> = {
      direct: `http://${HOST}:${engine.port}/v1/chat/completions`,
      gateway: `${b9.gw.url}/v1/chat/completions`,
    };
    const headers: Record<Path, Record<string, string>> = {
      direct: engine.headers,
      gateway: { authorization: `Bearer ${b9.key}` },
    };
    const proxyPids = [b9.gw.proc.child.pid!, b9.agent.proc.child.pid!];
    const answers: Record<Path, StreamedAnswer[]> = { direct: [], gateway: [] };
    const proxyCpu: number[] = [];
    const loads: number[] = [];
    for (let i = 0; i < o.warmup + o.rounds; i++) {
      const order: Path[] = i % 2 === 0 ? ["direct", "gateway"] : ["gateway", "direct"];
      for (const p of order) {
        const c0 = proxyPids.reduce((s, pid) => s + cpuMs(pid), 0);
        const a = await streamChat(url[p], headers[p], body, dispatcher);
        if (i < o.warmup) continue;
        answers[p].push(a);
        if (p === "gateway") proxyCpu.push(proxyPids.reduce((s, pid) => s + cpuMs(pid), 0) - c0);
      }
      if (i >= o.warmup) loads.push(loadavg1());
    }
    await dispatcher.close();

    const fig = (p: Path, f: (a: StreamedAnswer) => number) => median(answers[p].map(f));
    const e2e = (a: StreamedAnswer) => (a.tokens * 1000) / a.totalMs;
    const paired = (f: (a: StreamedAnswer) => number) =>
      median(answers.gateway.map((g, k) => f(g) / f(answers.direct[k]!)));
    const row = (name: string, f: (a: StreamedAnswer) => number, digits = 1) => [
      name,
      fig("direct", f).toFixed(digits),
      fig("gateway", f).toFixed(digits),
      ratio(fig("gateway", f), fig("direct", f)),
      `${paired(f).toFixed(3)}×`,
    ];
    out(`${o.rounds} rounds (after ${o.warmup} warm-ups); 1-min load average: ${loads.join(", ")}\n\n`);
    out(
      table(
        ["figure (median)", "direct", "gateway", "ratio of medians", "median of ratios"],
        [
          row("decode tokens/s", decodeTps),
          row("end-to-end tokens/s", e2e),
          row("time to first token, ms", (a) => a.ttftMs, 2),
          row("completion tokens", (a) => a.tokens, 0),
        ],
      ),
    );
    const ttftAdded = median(answers.gateway.map((g, k) => g.ttftMs - answers.direct[k]!.ttftMs));
    const texts = new Set([...answers.direct, ...answers.gateway].map((a) => a.text));
    out(
      `\nadded time to first token (median of each round's difference): ${ms(ttftAdded)} ms\n` +
        `gateway + agent CPU per streamed answer: ${ms(median(proxyCpu))} ms\n` +
        `answers: ${texts.size === 1 ? "all the same text" : `${texts.size} different texts (same seed, temperature 0)`}\n\n`,
    );
    // Each round's pair ran back to back, so its ratio is free of the machine's drift over the run.
    const r = paired(decodeTps);
    out("## Goal\n\n");
    out(
      `${r >= TPS_RATIO_GOAL ? "PASS" : "FAIL"}  decode tokens/s through the gateway ≥ ${TPS_RATIO_GOAL} × direct (median of the rounds' ratios): ${r.toFixed(3)}×\n`,
    );
  } finally {
    await b9.stop();
  }
}

runMain(main);
