import { Console } from "node:console";
import type { AddressInfo } from "node:net";
import { describeRelease, keepHeapSmall, releaseStartupMemory } from "@beta9/http/heap";
import { REDACT } from "@beta9/http/logger";
import { pino } from "pino";
import { ENGINE_KEY_ENV } from "../engine-key.ts";
import { type EngineFlags, FlagError, parseFlags } from "./flags.ts";
import { startLlama } from "./llama.ts";
import { defaultBudget } from "./memory.ts";
import { ModelRegistry } from "./models.ts";
import { buildServer } from "./server.ts";

/*
 * The builtin engine: a child process of the agent serving GGUF models with node-llama-cpp.
 *
 *   node main.ts --threads N --gpu auto|false --memory-budget BYTES [--port 0] [--max-queue 64]
 *
 * stdout carries exactly one line for the agent, {"event":"listening","port":N}; logs (pino JSON) go
 * to stderr. It exits when stdin closes (the agent is gone) and, gracefully, on SIGTERM. Requests must
 * carry the key the agent put in BETA9_ENGINE_API_KEY (never on the command line, which /proc shows to
 * every local user).
 */

// Nothing else may write to stdout, including libraries that call console.log.
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr });

const SHUTDOWN_GRACE_MS = 5_000;
/**
 * The engine's JS allocates little per token (llama.cpp's buffers are native): Node 24's default young
 * generation, up to 32 MB after start-up, was a fifth of a warm engine's idle RSS (bench/engine).
 */
const ENGINE_YOUNG_GENERATION_CAP = 4 * 1024 * 1024;
/** How long a warm engine with no model waits after start before giving start-up's memory back. */
const RELEASE_AFTER_MS = 3_000;

async function run(flags: EngineFlags, apiKey: string): Promise<void> {
  keepHeapSmall(ENGINE_YOUNG_GENERATION_CAP);
  const log = pino(
    {
      name: "b9-builtin",
      level: process.env.BETA9_LOG_LEVEL ?? "info",
      redact: { paths: REDACT, censor: "[redacted]" },
    },
    pino.destination({ dest: 2, sync: true }),
  );
  process.on("uncaughtException", (err) => {
    log.fatal({ err }, "uncaught exception");
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    log.fatal({ err }, "unhandled rejection");
    process.exit(1);
  });

  let stopping = false;
  const started = performance.now();
  const { llama, threads } = await startLlama({ gpu: flags.gpu, threads: flags.threads, log });
  const budget = flags.memoryBudget ?? (await defaultBudget(llama));
  const registry = new ModelRegistry({ llama, budget, threads, maxQueue: flags.maxQueue, log });
  const app = await buildServer({
    registry,
    log,
    apiKey,
    // What the unloaded model left in V8's heap; the agent's malloc settings (builtin-engine.ts) give
    // llama.cpp's freed native memory back as it goes.
    onEmpty: () => {
      if (stopping) return;
      const released = releaseStartupMemory();
      log.info(
        { rss_before: released.rssBefore, rss_after: released.rssAfter },
        `gave the unloaded models' memory back: RSS ${mb(released.rssBefore)} → ${mb(released.rssAfter)} MB`,
      );
    },
  });

  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, "shutting down");
    const force = setTimeout(() => {
      log.warn({ grace_ms: SHUTDOWN_GRACE_MS }, "shutdown took too long; exiting anyway");
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
    force.unref();
    // close() stops accepting, its preClose hook aborts generations and unloads every model.
    (async () => {
      await app.close();
      await llama.dispose();
    })().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (flags.watchStdin) {
    process.stdin.on("end", () => stop("stdin closed: the agent is gone"));
    process.stdin.on("error", () => stop("stdin failed: the agent is gone"));
    process.stdin.resume();
  }

  await app.listen({ host: "127.0.0.1", port: flags.port });
  const port = (app.server.address() as AddressInfo).port;
  log.info(
    {
      port,
      gpu: llama.gpu,
      gpu_devices: await llama.getGpuDeviceNames(),
      threads,
      memory_budget_bytes: budget,
      llama_cpp: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
      startup_ms: Math.round(performance.now() - started),
    },
    "builtin engine listening",
  );
  process.stdout.write(`${JSON.stringify({ event: "listening", port })}\n`);
  // Kept warm, the engine may wait hours for its first model: it waits small. A model asked for at once
  // (a cold start) is not made to share its load with this collection.
  setTimeout(() => {
    if (stopping || registry.list().length > 0) return;
    const released = releaseStartupMemory();
    log.info({ rss_before: released.rssBefore, rss_after: released.rssAfter }, describeRelease(released));
  }, RELEASE_AFTER_MS).unref();
}

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

/** The agent's key, taken out of the environment so that nothing this process starts inherits it. */
function takeApiKey(): string {
  const key = process.env[ENGINE_KEY_ENV];
  delete process.env[ENGINE_KEY_ENV];
  if (key === undefined || key.length < 16)
    throw new FlagError(
      `${ENGINE_KEY_ENV} must hold the key (16 characters or more) that requests to this engine must carry`,
    );
  return key;
}

try {
  const flags = parseFlags(process.argv.slice(2));
  await run(flags, takeApiKey());
} catch (err) {
  if (err instanceof FlagError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(
    `${JSON.stringify({ level: 60, time: Date.now(), name: "b9-builtin", msg: "the builtin engine could not start", err: { message: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined } })}\n`,
  );
  process.exit(1);
}
