/**
 * Cold start through the gateway: what a request to a deployment with no replica (min 0) waits for
 * beyond the engine's own work. A real b9gateway and b9agent; the test model (SmolLM2,
 * BETA9_TEST_MODEL) deployed with min_replicas 0. Each round starts from zero (no replica anywhere),
 * streams one chat completion through the gateway and takes its time to first token (TTFT). From the
 * logs it takes the engine's own model load time (`load_ms` of the builtin engine's "model loaded"),
 * and it then asks the engine directly for the same answer, warm, for the engine's own TTFT.
 *
 *   added = cold TTFT through the gateway − engine load_ms − engine's own TTFT
 *
 * is everything else: placement, the agent's pull (fast once the model is on the machine), starting
 * the engine process, the supervisor's readiness probe, the hops. Round 1 is the first start ever on
 * this machine (the model is pulled then); later rounds unload the replica first and start again.
 * The agent runs as it does by default, with inference.keep_engine_warm: the engine's process is up
 * before the request, so a start only loads the model. --cold-engine sets keep_engine_warm: false (the
 * engine's process starts with the model and stops with it). See README.md beside this file.
 *
 *   npx node bench/gateway/cold-start.ts [--rounds 4] [--max-tokens 8] [--cold-engine]
 */
import { parseArgs } from "node:util";
import { testModelPath, waitFor } from "@beta9/test-utils";
import {
  agentLogs,
  builtinEngine,
  HOST,
  killOnExit,
  machineLine,
  median,
  ms,
  out,
  runMain,
  startBeta9,
  startedAtMs,
  streamChat,
  table,
  watchdog,
} from "./common.ts";

const MODEL = "smollm2";
const GOAL_ADDED_MS = 300;

function options() {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "4" },
      "max-tokens": { type: "string", default: "8" },
      "cold-engine": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out("usage: npx node bench/gateway/cold-start.ts [--rounds 4] [--max-tokens 8] [--cold-engine]\n");
    process.exit(0);
  }
  const o = {
    rounds: Number(values.rounds),
    maxTokens: Number(values["max-tokens"]),
    keepWarm: !values["cold-engine"],
  };
  if (!Number.isInteger(o.rounds) || o.rounds < 2 || o.rounds > 50) throw new Error("--rounds: 2 to 50");
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1 || o.maxTokens > 512)
    throw new Error("--max-tokens: 1 to 512");
  return o;
}

interface Round {
  coldTtftMs: number;
  loadMs: number;
  engineTtftMs: number;
  addedMs: number;
  /** Milestones, ms after the request was sent (from the gateway's, agent's and engine's logs). */
  marks: Record<string, number>;
  /** The engine's process boot, exec'd → listening (0 for a warm engine). */
  bootMs: number;
  /** The engine reading the GGUF's metadata and estimating memory, before load_ms starts. */
  prepareMs: number;
}

async function main(): Promise<void> {
  const o = options();
  watchdog(20 * 60_000);
  out(`# Cold start through the gateway: ${machineLine()}\n`);
  out(
    `model ${testModelPath()}, deployment min 0; ${o.rounds} rounds; ` +
      `inference.keep_engine_warm: ${o.keepWarm}\n\n`,
  );

  // Heartbeats every second: the gateway notices an unloaded replica within a second.
  const b9 = await startBeta9({
    env: { BETA9_LOG_LEVEL: "info" },
    gatewayArgs: ["--heartbeat-interval", "1s"],
    inference: { keep_engine_warm: o.keepWarm },
  });
  const agentPid = b9.agent.proc.child.pid!;
  try {
    if (o.keepWarm)
      await waitFor(() => b9.agent.proc.lines.some((l) => l.includes("builtin engine kept warm")), {
        timeoutMs: 60_000,
        what: "the warm builtin engine",
      });
    const dep = await b9.gw.api("POST", "/api/v1/deployments", {
      name: MODEL,
      source: testModelPath(),
      min_replicas: 0,
      max_replicas: 1,
      idle_seconds: 3600,
      context_size: 2048,
    });
    if (dep.status !== 201)
      throw new Error(`POST /api/v1/deployments: ${dep.status} ${JSON.stringify(dep.body)}`);
    const body = {
      model: MODEL,
      messages: [{ role: "user", content: "What is the capital of France?" }],
      temperature: 0,
      seed: 42,
      max_tokens: o.maxTokens,
    };
    const noReplica = async () => {
      const r = await b9.gw.api<{ replicas: unknown[] }>("GET", "/api/v1/replicas");
      const s = await b9.control<{ models: unknown[] }>("GET", "/inference/status");
      return r.status === 200 && r.body.replicas.length === 0 && s.models.length === 0;
    };

    const rounds: Round[] = [];
    for (let i = 0; i < o.rounds; i++) {
      await waitFor(noReplica, { timeoutMs: 60_000, intervalMs: 200, what: "no replica anywhere" });
      const agentFrom = b9.agent.proc.lines.length;
      const sentAt = Date.now();
      const cold = await streamChat(
        `${b9.gw.url}/v1/chat/completions`,
        { authorization: `Bearer ${b9.key}` },
        body,
      );

      const engine = builtinEngine(agentPid);
      if (!engine) throw new Error("the agent runs no builtin engine after the cold start");
      killOnExit(engine.pid);
      // The engine's own time to first token for the same request, warm (median of three).
      const direct: number[] = [];
      for (let k = 0; k < 3; k++)
        direct.push(
          (await streamChat(`http://${HOST}:${engine.port}/v1/chat/completions`, engine.headers, body))
            .ttftMs,
        );

      // The "is ready" lines may be read from the pipes a moment after the answer arrived.
      await waitFor(() => agentLogs(b9.agent, agentFrom).agent.some((e) => e.msg === `${MODEL} is ready`), {
        timeoutMs: 5_000,
        what: "the agent's ready line",
      });
      const logs = agentLogs(b9.agent, agentFrom);
      const gwLogs = b9.gw.proc.logs();
      const at = (list: Record<string, unknown>[], match: (e: Record<string, unknown>) => boolean) => {
        const e = list.find(
          (x) => typeof x.time === "number" && (x.time as number) >= sentAt - 5 && match(x),
        );
        return e ? (e.time as number) - sentAt : Number.NaN;
      };
      const engineTtftMs = median(direct);
      const loaded = logs.engine.find((e) => e.msg === "model loaded" && typeof e.load_ms === "number");
      const loadMs = Number(loaded?.load_ms ?? Number.NaN);
      const listening = logs.engine.find((e) => e.msg === "builtin engine listening");
      // A warm engine started before the request: its boot is not part of this start.
      const execAt = startedAtMs(engine.pid) - sentAt;
      const warm = execAt < 0;
      const listeningAt = warm ? Number.NaN : at(logs.engine, (e) => e.msg === "builtin engine listening");
      const loadedAt = at(logs.engine, (e) => e.msg === "model loaded");
      const prepareMs = Number(loaded?.prepare_ms ?? Number.NaN);
      const marks = {
        "gateway places it": at(gwLogs, (e) => String(e.msg).startsWith(`loading ${MODEL} on`)),
        "agent starts the engine (pulled)": at(logs.agent, (e) => e.msg === `starting ${MODEL} on builtin`),
        "engine process exec'd (– when warm)": warm ? Number.NaN : execAt,
        "engine code starts (listening − startup_ms)":
          listeningAt - Number(listening?.startup_ms ?? Number.NaN),
        "engine listening": listeningAt,
        "engine: load requested (load begins − prepare_ms)": loadedAt - loadMs - prepareMs,
        "engine: load begins (loaded − load_ms)": loadedAt - loadMs,
        "engine: model loaded": loadedAt,
        "agent: ready": at(logs.agent, (e) => e.msg === `${MODEL} is ready`),
        "gateway: ready on the machine": at(gwLogs, (e) => String(e.msg).startsWith(`${MODEL} is ready on`)),
        "first token at the client": cold.ttftMs,
      };
      rounds.push({
        coldTtftMs: cold.ttftMs,
        loadMs,
        engineTtftMs,
        addedMs: cold.ttftMs - loadMs - engineTtftMs,
        marks,
        bootMs: warm ? 0 : listeningAt - execAt,
        prepareMs,
      });

      await b9.control("POST", "/inference/stop", { model: MODEL });
    }

    out("Milestones, ms after the request was sent (from the logs; round 1 includes the first pull):\n\n");
    const names = Object.keys(rounds[0]!.marks);
    out(
      table(
        ["milestone", ...rounds.map((_, i) => `round ${i + 1}`)],
        names.map((n) => [n, ...rounds.map((r) => ms(r.marks[n]!))]),
      ),
    );
    out("\n");
    out(
      table(
        ["round", "cold TTFT ms", "engine load_ms", "engine TTFT ms", "added ms"],
        rounds.map((r, i) => [
          String(i + 1),
          ms(r.coldTtftMs),
          ms(r.loadMs),
          ms(r.engineTtftMs),
          ms(r.addedMs),
        ]),
      ),
    );
    const later = rounds.slice(1);
    const added = median(later.map((r) => r.addedMs));
    const boot = median(later.map((r) => r.bootMs));
    const prepare = median(later.map((r) => r.prepareMs));
    out(
      `\nfrom zero with the model already on the machine (rounds 2–${o.rounds}), median: cold TTFT ` +
        `${ms(median(later.map((r) => r.coldTtftMs)))} ms = engine load ${ms(median(later.map((r) => r.loadMs)))} ms ` +
        `+ engine TTFT ${ms(median(later.map((r) => r.engineTtftMs)))} ms + added ${ms(added)} ms\n` +
        `of the added time, the builtin engine's process boot (exec'd → listening): ${ms(boot)} ms; ` +
        `the engine reading the GGUF's metadata before its load: ${ms(prepare)} ms; ` +
        `the rest (placement, pull check, readiness, hops): ${ms(added - boot - prepare)} ms\n` +
        `first start ever (round 1, pulls the model): added ${ms(rounds[0]!.addedMs)} ms\n\n`,
    );
    out("## Goal\n\n");
    out(
      `${added <= GOAL_ADDED_MS ? "PASS" : "FAIL"}  cold start adds ≤ ${GOAL_ADDED_MS} ms over the engine's own load and first token: ${ms(added)} ms (median of rounds 2–${o.rounds})\n`,
    );
  } finally {
    await b9.stop();
  }
}

runMain(main);
