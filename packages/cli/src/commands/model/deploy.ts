import { type CreateDeployment, countryProblem, type DeploymentView, type GpuRequirement } from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { parseDuration, shortDuration } from "../../duration.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { parseSize } from "../../size.ts";
import { UserError } from "../../user-error.ts";

type Engine = NonNullable<CreateDeployment["engine"]>;

/** Typed as records so the compiler fails here when the protocol adds or drops an engine or GPU kind. */
const ENGINES: Record<Engine, true> = {
  builtin: true,
  ollama: true,
  llamacpp: true,
  vllm: true,
  sglang: true,
  mlx: true,
};
export const GPUS: Record<GpuRequirement, true> = {
  nvidia: true,
  apple: true,
  amd: true,
  intel: true,
  any: true,
  none: true,
};

/** The gateway's limits, checked here too so a mistake is named before any request. */
const MAX_REPLICAS = 64;
const IDLE_MIN_SECONDS = 10;
const IDLE_MAX_SECONDS = 7 * 86_400;
const CONTEXT_MIN = 256;
const CONTEXT_MAX = 1_048_576;

interface Options {
  source: string;
  engine?: Engine;
  min?: number;
  max?: number;
  idle?: number;
  pool?: string;
  gpu?: GpuRequirement;
  minVram?: number;
  country?: string[];
  region?: "eu";
  prefer?: "low-carbon";
  context?: number;
  sha256?: string;
  quantize?: string;
  json?: boolean;
}

export function addModelDeploy(model: Command, ctx: Context): void {
  model
    .command("deploy")
    .description("keep a model servable: loaded on a fitting machine on first use, unloaded when idle")
    .argument("<name>", 'what clients call it, e.g. llama3.2:1b (the "model" of OpenAI and Ollama requests)')
    .requiredOption(
      "--source <source>",
      "where machines fetch it: http(s)://…, hf:ORG/REPO/FILE.gguf, hf:ORG/REPO[/FOLDER] (safetensors), ollama:NAME:TAG, or a path the machine allows",
    )
    .option(
      "--engine <engine>",
      `engine to serve it with: ${Object.keys(ENGINES).join(", ")} (default: the machine's choice)`,
      oneOf("engine", ENGINES),
    )
    .option(
      "--min <n>",
      "replicas kept running even when idle (default 0: scale to zero)",
      wholeNumber(0, MAX_REPLICAS),
    )
    .option(
      "--max <n>",
      "most replicas at once (default 1, or --min when higher)",
      wholeNumber(1, MAX_REPLICAS),
    )
    .option(
      "--idle <duration>",
      "unload a replica after this long without requests: 30s, 5m, 1h (default 5m)",
      idle,
    )
    .option("--pool <pool>", "pool whose machines may serve it (default external)")
    .option(
      "--gpu <kind>",
      `GPU the machine must have: ${Object.keys(GPUS).join(", ")} (default any)`,
      oneOf("GPU kind", GPUS),
    )
    .option("--min-vram <size>", "free GPU memory a machine needs, e.g. 8GB, 512MiB, 16GiB", size)
    .option("--country <codes>", "only machines in these countries, ISO 3166 codes: DE,FR", countries)
    .option("--region <region>", "only machines in this region: eu", region)
    .option("--prefer <what>", PREFER_HELP, prefer)
    .option(
      "--context <tokens>",
      `context length to serve with (${CONTEXT_MIN} to ${CONTEXT_MAX})`,
      wholeNumber(CONTEXT_MIN, CONTEXT_MAX),
    )
    .option("--sha256 <hex>", "the model file's SHA-256; machines refuse a download that differs", sha256)
    .option(
      "--quantize <type>",
      "serve the GGUF source converted to this llama.cpp type (Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16 …), converted once per machine",
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: Options) => {
      if (opts.min !== undefined && opts.max !== undefined && opts.max < opts.min) {
        throw new UserError(`--max ${opts.max} is below --min ${opts.min}`, "raise --max or lower --min");
      }
      const view = await ctx.client().deployments.create({
        name,
        source: opts.source,
        sha256: opts.sha256,
        engine: opts.engine,
        min_replicas: opts.min,
        max_replicas: opts.max,
        idle_seconds: opts.idle,
        pool: opts.pool,
        gpu: opts.gpu,
        min_vram_bytes: opts.minVram,
        countries: opts.country,
        region: opts.region,
        prefer: opts.prefer,
        context_size: opts.context,
        quantize: opts.quantize,
      });
      if (opts.json) return ctx.printJson(view);
      ctx.print(
        [
          `Model ${view.name} deployed in workspace ${view.workspace}: ${replicas(view)} in pool ${view.pool}, unloaded after ${shortDuration(view.idle_seconds)} idle.`,
          ...(view.quantize
            ? [
                `The first machine converts its source to ${view.quantize} once; the others copy that conversion through the gateway.`,
              ]
            : []),
          `Call it as model "${view.name}" on the gateway's OpenAI (/v1) or Ollama (/api) API.`,
        ].join("\n"),
      );
    });
}

/** "0 to 2 replicas", "1 replica". */
export function replicas(d: Pick<DeploymentView, "min_replicas" | "max_replicas">): string {
  if (d.min_replicas === d.max_replicas)
    return `${d.min_replicas} ${d.min_replicas === 1 ? "replica" : "replicas"}`;
  return `${d.min_replicas} to ${d.max_replicas} replicas`;
}

export function invalid(error: unknown): InvalidArgumentError {
  return new InvalidArgumentError(error instanceof Error ? error.message : String(error));
}

export function oneOf<T extends string>(what: string, known: Record<T, true>): (value: string) => T {
  return (value) => {
    const v = value.trim().toLowerCase();
    if (!Object.hasOwn(known, v))
      throw new InvalidArgumentError(
        `unknown ${what} "${value}"; choose from ${Object.keys(known).join(", ")}`,
      );
    return v as T;
  };
}

export function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value.trim());
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(`"${value}" is not a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

function idle(value: string): number {
  let seconds: number;
  try {
    seconds = parseDuration(value);
  } catch (error) {
    throw invalid(error);
  }
  if (seconds < IDLE_MIN_SECONDS)
    throw new InvalidArgumentError(`the idle time is at least ${IDLE_MIN_SECONDS}s`);
  if (seconds > IDLE_MAX_SECONDS) throw new InvalidArgumentError("the idle time is at most 7d");
  return seconds;
}

export function size(value: string): number {
  try {
    return parseSize(value);
  } catch (error) {
    throw invalid(error);
  }
}

export function countries(value: string): string[] {
  const codes = value
    .split(",")
    .map((c) => c.trim().toUpperCase())
    .filter(Boolean);
  if (codes.length === 0) throw new InvalidArgumentError("name at least one country, e.g. DE or DE,FR");
  for (const code of codes) {
    // Assigned codes only (the protocol's list): "XX" and "UK" are two letters but no country.
    const problem = countryProblem(code);
    if (problem) throw new InvalidArgumentError(problem);
  }
  return [...new Set(codes)];
}

export const PREFER_HELP =
  "low-carbon: among the machines that fit, those whose grid emits least go first (b9 model ps says why)";

export function prefer(value: string): "low-carbon" {
  if (value.trim().toLowerCase() !== "low-carbon")
    throw new InvalidArgumentError(`unknown preference "${value}"; the one preference is low-carbon`);
  return "low-carbon";
}

export function region(value: string): "eu" {
  if (value.trim().toLowerCase() !== "eu")
    throw new InvalidArgumentError(`unknown region "${value}"; the one region is eu`);
  return "eu";
}

function sha256(value: string): string {
  const hex = value.trim().toLowerCase();
  if (!/^[a-f0-9]{64}$/.test(hex)) throw new InvalidArgumentError("a SHA-256 is 64 hexadecimal digits");
  return hex;
}
