import { parseArgs } from "node:util";

export type GpuChoice = "auto" | false | "cuda" | "vulkan" | "metal";

export interface EngineFlags {
  /** Port on 127.0.0.1; 0 picks a free one (printed on stdout). */
  port: number;
  /** CPU threads for llama.cpp; when absent, the machine's math cores less one (for Node's own thread). */
  threads: number | undefined;
  gpu: GpuChoice;
  /** Bytes of RAM + VRAM all models together may use; when absent, the machine's memory. */
  memoryBudget: number | undefined;
  /** Requests that may wait for a busy model before new ones get 503. */
  maxQueue: number;
  /** Exit when stdin closes (the agent that started us is gone). */
  watchStdin: boolean;
}

export const USAGE = `usage: main.ts [--port N] [--threads N] [--gpu auto|false|cuda|vulkan|metal]
               [--memory-budget BYTES] [--max-queue N] [--ignore-stdin]`;

export class FlagError extends Error {
  constructor(message: string) {
    super(`${message}\n${USAGE}`);
    this.name = "FlagError";
  }
}

/** The engine's command line, as the agent writes it. Every mistake is a FlagError saying what to fix. */
export function parseFlags(argv: readonly string[]): EngineFlags {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        threads: { type: "string" },
        gpu: { type: "string" },
        "memory-budget": { type: "string" },
        "max-queue": { type: "string" },
        "ignore-stdin": { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new FlagError(err instanceof Error ? err.message : String(err));
  }
  const str = (k: string) => values[k] as string | undefined;
  return {
    port: integer("--port", str("port"), 0, 0, 65535),
    threads: str("threads") === undefined ? undefined : integer("--threads", str("threads"), 0, 1, 1024),
    gpu: gpu(str("gpu")),
    memoryBudget:
      str("memory-budget") === undefined
        ? undefined
        : integer("--memory-budget", str("memory-budget"), 0, 0, Number.MAX_SAFE_INTEGER),
    maxQueue: integer("--max-queue", str("max-queue"), 64, 0, 100_000),
    watchStdin: values["ignore-stdin"] !== true,
  };
}

function integer(
  flag: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new FlagError(`${flag} takes a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

function gpu(value: string | undefined): GpuChoice {
  if (value === undefined || value === "auto") return "auto";
  if (value === "false" || value === "off" || value === "none") return false;
  if (value === "cuda" || value === "vulkan" || value === "metal") return value;
  throw new FlagError(`--gpu takes auto, false, cuda, vulkan or metal, not "${value}"`);
}
