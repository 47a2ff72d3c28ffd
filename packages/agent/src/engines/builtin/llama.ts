import type { Logger } from "@beta9/http/logger";
import { getLlama, type Llama, LlamaLogLevel } from "node-llama-cpp";
import type { GpuChoice } from "./flags.ts";

/**
 * The llama.cpp runtime, from node-llama-cpp's prebuilt binaries only (never a build from source on a
 * user's machine). `gpu: "auto"` takes the best of Metal, CUDA and Vulkan that works here, else CPU.
 * Threads are set explicitly: node-llama-cpp's default (at least 4) oversubscribes small machines.
 */
export async function startLlama(opts: {
  gpu: GpuChoice;
  threads: number | undefined;
  log: Logger;
}): Promise<{
  llama: Llama;
  threads: number;
}> {
  const { log } = opts;
  const llama = await getLlama({
    gpu: opts.gpu,
    build: "never",
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (text === "") return;
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
        log.error({ llama: text }, "llama.cpp");
      else if (level === LlamaLogLevel.warn) log.warn({ llama: text }, "llama.cpp");
      else log.debug({ llama: text }, "llama.cpp");
    },
    ...(opts.threads !== undefined ? { maxThreads: opts.threads } : {}),
  });
  // Leave a core to Node's thread (HTTP, sampling callbacks): on 2 cores, 2 llama.cpp threads ran
  // SmolLM2 at 12-60 tokens/s against 140 with 1, as they spin-wait on each other and on Node.
  const threads = opts.threads ?? Math.max(1, llama.cpuMathCores - 1);
  llama.maxThreads = threads;
  return { llama, threads };
}
