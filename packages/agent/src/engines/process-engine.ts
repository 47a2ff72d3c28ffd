import type { Hardware } from "@beta9/protocol";
import {
  type Engine,
  type EngineDetection,
  type EngineName,
  EngineStartError,
  type ModelFormat,
  type ModelSpec,
  type ServedModel,
  type StartOptions,
} from "./engine.ts";
import { engineEnv, findExecutable } from "./executables.ts";
import { httpRequest, openAiModelIds, parseJson } from "./http.ts";
import type { PidfileRegistry } from "./pidfiles.ts";
import { freeLoopbackPort, LOOPBACK } from "./ports.ts";
import { ProcessServedModel } from "./served-process.ts";
import { type ReadinessProbe, Supervisor, type SupervisorOptions } from "./supervisor.ts";

/** Settings every external engine takes; all optional. */
export interface ExternalEngineOptions {
  /** The engine's program: a name looked up on PATH or an absolute path (the owner's config). */
  binary?: string | undefined;
  /** PATH used to find the program and given to the engine; default: the agent's. */
  pathEnv?: string | undefined;
  /** Extra environment for the engine (CUDA_VISIBLE_DEVICES, HF_HOME, …). */
  env?: Record<string, string | undefined> | undefined;
  pidfiles?: PidfileRegistry | undefined;
  startTimeoutMs?: number | undefined;
  maxStartMs?: number | undefined;
  stopGraceMs?: number | undefined;
  probeIntervalMs?: number | undefined;
  deathSignalPrefix?: readonly string[] | null | undefined;
}

export function supervisorSettings(
  options: ExternalEngineOptions,
): Pick<
  SupervisorOptions,
  "pidfiles" | "startTimeoutMs" | "maxStartMs" | "stopGraceMs" | "probeIntervalMs" | "deathSignalPrefix"
> {
  return {
    pidfiles: options.pidfiles,
    startTimeoutMs: options.startTimeoutMs,
    maxStartMs: options.maxStartMs,
    stopGraceMs: options.stopGraceMs,
    probeIntervalMs: options.probeIntervalMs,
    ...(options.deathSignalPrefix === undefined ? {} : { deathSignalPrefix: options.deathSignalPrefix }),
  };
}

export function pathOf(options: ExternalEngineOptions): string | undefined {
  return options.pathEnv ?? process.env.PATH;
}

export function envFor(options: ExternalEngineOptions, extra: Record<string, string | undefined> = {}) {
  return engineEnv({ PATH: pathOf(options), ...options.env, ...extra });
}

export function notInstalled(
  engine: EngineName,
  formats: ModelFormat[],
  reason: string,
  version?: string,
): EngineDetection {
  return { engine, installed: false, version, accelerators: [], formats, reason };
}

/** The weights path of a model, or a start error saying what is missing. */
export function weightsPath(engine: EngineName, model: ModelSpec, formats: readonly ModelFormat[]): string {
  if (!formats.includes(model.format)) {
    throw new EngineStartError(
      engine,
      `${engine} cannot serve ${model.format} models (it serves ${formats.join(", ")})`,
    );
  }
  if (model.path === undefined || model.path === "") {
    throw new EngineStartError(
      engine,
      `model ${model.name} has no local weights to give ${engine}; download it first`,
    );
  }
  return model.path;
}

/**
 * The readiness of an engine's `GET /health`: 200 is serving; 503 is loading (llama-server and
 * SGLang answer 503 while they load); no answer or anything else is down.
 */
export async function healthReadiness(
  endpoint: string,
  signal: AbortSignal,
): Promise<"ready" | "loading" | "down"> {
  const answer = await httpRequest(`${endpoint}/health`, { signal });
  if (answer === null) return "down";
  if (answer.status === 200) return "ready";
  if (answer.status === 503) return "loading";
  return "down";
}

export async function healthOk(endpoint: string, signal?: AbortSignal): Promise<boolean> {
  const answer = await httpRequest(`${endpoint}/health`, { signal });
  return answer?.status === 200;
}

/**
 * The name to send as "model": the one we asked the engine to serve it under, if its /v1/models
 * lists it; otherwise the first id it lists (an older engine that ignored the alias).
 */
export async function confirmedModelName(
  endpoint: string,
  expected: string,
  signal?: AbortSignal,
): Promise<string> {
  const answer = await httpRequest(`${endpoint}/v1/models`, { signal });
  if (answer === null || answer.status !== 200) return expected;
  const ids = openAiModelIds(parseJson(answer.text));
  return ids.length === 0 || ids.includes(expected) ? expected : (ids[0] ?? expected);
}

export interface ProcessLaunch {
  engine: EngineName;
  options: ExternalEngineOptions;
  start: StartOptions;
  /** The program as configured; resolved on PATH here. */
  program: string;
  /** A sentence for when the program is missing. */
  missing: string;
  args: (port: number) => string[];
  /** Name the engine serves the model under (its alias / served-model-name). */
  servedName: string;
  probe?: (endpoint: string) => ReadinessProbe;
  isProgress?: (line: string) => boolean;
  probeTimeoutMs?: number;
  env?: Record<string, string | undefined>;
  /** Check the served name against /v1/models (not for MLX, whose list names files, not the alias). */
  confirmName?: boolean;
}

/** Starts one engine process serving one model and waits until it answers. */
export async function launchProcessEngine(
  launch: ProcessLaunch,
  track: Set<ProcessServedModel>,
): Promise<ProcessServedModel> {
  const executable = await findExecutable(launch.program, pathOf(launch.options));
  if (executable === null) throw new EngineStartError(launch.engine, launch.missing);
  const port = await freeLoopbackPort();
  const endpoint = `http://${LOOPBACK}:${port}`;
  const probe = launch.probe?.(endpoint) ?? ((signal) => healthReadiness(endpoint, signal));
  const supervisor = new Supervisor({
    engine: launch.engine,
    command: executable,
    args: launch.args(port),
    env: envFor(launch.options, launch.env),
    probe,
    isProgress: launch.isProgress,
    onLog: launch.start.onLog,
    probeTimeoutMs: launch.probeTimeoutMs,
    ...supervisorSettings(launch.options),
  });
  await supervisor.start(launch.start.signal);
  const upstreamModel =
    launch.confirmName === false
      ? launch.servedName
      : await confirmedModelName(endpoint, launch.servedName, launch.start.signal);
  const served: ProcessServedModel = new ProcessServedModel({
    engine: launch.engine,
    model: launch.start.model,
    endpoint,
    upstreamModel,
    supervisor,
    health: (signal) => healthOk(endpoint, signal),
    onStop: () => track.delete(served),
  });
  track.add(served);
  return served;
}

export async function stopAll(track: Set<ProcessServedModel>): Promise<void> {
  await Promise.all([...track].map((served) => served.stop()));
}

/**
 * An engine that runs one process per served model (llama-server, vLLM, SGLang, MLX): the program it
 * runs, the models it serves, and stopping them all are the same for each; detection and the command
 * line are each engine's own.
 */
export abstract class OneProcessPerModelEngine<O extends ExternalEngineOptions> implements Engine {
  abstract readonly name: EngineName;
  protected readonly options: O;
  protected readonly served = new Set<ProcessServedModel>();
  readonly #defaultProgram: string;

  constructor(options: O, defaultProgram: string) {
    this.options = options;
    this.#defaultProgram = defaultProgram;
  }

  /** The program as configured, or the engine's usual name (looked up on PATH). */
  protected program(): string {
    return this.options.binary ?? this.#defaultProgram;
  }

  abstract detect(hardware: Hardware): Promise<EngineDetection>;
  abstract start(options: StartOptions): Promise<ServedModel>;

  protected launch(
    start: StartOptions,
    spec: Omit<ProcessLaunch, "engine" | "options" | "start" | "program">,
  ): Promise<ProcessServedModel> {
    return launchProcessEngine(
      { engine: this.name, options: this.options, start, program: this.program(), ...spec },
      this.served,
    );
  }

  shutdown(): Promise<void> {
    return stopAll(this.served);
  }
}
