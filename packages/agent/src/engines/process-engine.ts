import type { Hardware } from "@beta9/protocol";
import { findExecutable } from "../process/find-executable.ts";
import type { PidfileRegistry } from "../process/pidfiles.ts";
import {
  type Accelerator,
  type Engine,
  type EngineDetection,
  type EngineName,
  EngineStartError,
  type ModelFormat,
  type ModelSpec,
  type ServedModel,
  type StartOptions,
} from "./engine.ts";
import { EngineKey } from "./engine-key.ts";
import { engineEnv } from "./executables.ts";
import { servingGpuAccelerator } from "./hardware-facts.ts";
import { httpRequest, openAiModelIds, parseJson } from "./http.ts";
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
  headers?: Record<string, string>,
): Promise<"ready" | "loading" | "down"> {
  const answer = await httpRequest(`${endpoint}/health`, { headers, signal });
  if (answer === null) return "down";
  if (answer.status === 200) return "ready";
  if (answer.status === 503) return "loading";
  return "down";
}

export async function healthOk(
  endpoint: string,
  signal?: AbortSignal,
  headers?: Record<string, string>,
): Promise<boolean> {
  const answer = await httpRequest(`${endpoint}/health`, { headers, signal });
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
  headers?: Record<string, string>,
): Promise<string> {
  const answer = await httpRequest(`${endpoint}/v1/models`, { headers, signal });
  if (answer === null || answer.status !== 200) return expected;
  const ids = openAiModelIds(parseJson(answer.text));
  return ids.length === 0 || ids.includes(expected) ? expected : (ids[0] ?? expected);
}

/** What an engine's command line is built from: the weights, the model, the machine, the port. */
export interface ServerArgsInput {
  modelPath: string;
  model: ModelSpec;
  hardware: Hardware;
  port: number;
}

export interface EngineProcessSpec {
  engine: EngineName;
  options: ExternalEngineOptions;
  /** The program as configured; resolved on PATH here. */
  program: string;
  /** A sentence for when the program is missing. */
  missing: string;
  /** The arguments, and environment beyond the owner's, for the loopback port the engine listens on. */
  command: (port: number) => { args: string[]; env?: Record<string, string | undefined> | undefined };
  probe: (endpoint: string) => ReadinessProbe;
  /** The engine's key, masked in what it prints. */
  key?: EngineKey | undefined;
  isProgress?: ((line: string) => boolean) | undefined;
  probeTimeoutMs?: number | undefined;
  onLog?: ((line: string) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** Runs an engine's program on a free loopback port under a supervisor and waits until it answers. */
export async function startEngineProcess(
  spec: EngineProcessSpec,
): Promise<{ endpoint: string; supervisor: Supervisor }> {
  const executable = await findExecutable(spec.program, pathOf(spec.options));
  if (executable === null) throw new EngineStartError(spec.engine, spec.missing);
  const port = await freeLoopbackPort();
  const endpoint = `http://${LOOPBACK}:${port}`;
  const command = spec.command(port);
  const supervisor = new Supervisor({
    engine: spec.engine,
    command: executable,
    args: command.args,
    env: envFor(spec.options, command.env),
    probe: spec.probe(endpoint),
    isProgress: spec.isProgress,
    onLog: spec.onLog,
    redact: spec.key === undefined ? undefined : (line) => spec.key?.redact(line) ?? line,
    probeTimeoutMs: spec.probeTimeoutMs,
    ...supervisorSettings(spec.options),
  });
  await supervisor.start(spec.signal);
  return { endpoint, supervisor };
}

export interface ProcessLaunch
  extends Pick<
    EngineProcessSpec,
    "engine" | "options" | "program" | "missing" | "isProgress" | "probeTimeoutMs"
  > {
  start: StartOptions;
  args: (port: number) => string[];
  /** Name the engine serves the model under (its alias / served-model-name). */
  servedName: string;
  /** How to tell it is ready; default: its GET /health. */
  probe?: ((endpoint: string, headers: Record<string, string>) => ReadinessProbe) | undefined;
  /**
   * The environment variable the engine reads its API key from (a new key each start); without one
   * the engine takes requests from any local user (MLX's server has no authentication).
   */
  keyEnv?: string | undefined;
  env?: Record<string, string | undefined> | undefined;
  /** Check the served name against /v1/models (not for MLX, whose list names files, not the alias). */
  confirmName?: boolean | undefined;
}

/** Starts one engine process serving one model and waits until it answers. */
export async function launchProcessEngine(
  launch: ProcessLaunch,
  track: Set<ProcessServedModel>,
): Promise<ProcessServedModel> {
  const key = launch.keyEnv === undefined ? undefined : new EngineKey();
  const headers = key?.headers() ?? {};
  const { endpoint, supervisor } = await startEngineProcess({
    engine: launch.engine,
    options: launch.options,
    program: launch.program,
    missing: launch.missing,
    command: (port) => ({
      args: launch.args(port),
      env: { ...launch.env, ...(key && launch.keyEnv ? { [launch.keyEnv]: key.reveal() } : {}) },
    }),
    probe: (endpoint) =>
      launch.probe?.(endpoint, headers) ?? ((signal) => healthReadiness(endpoint, signal, headers)),
    key,
    isProgress: launch.isProgress,
    probeTimeoutMs: launch.probeTimeoutMs,
    onLog: launch.start.onLog,
    signal: launch.start.signal,
  });
  const upstreamModel =
    launch.confirmName === false
      ? launch.servedName
      : await confirmedModelName(endpoint, launch.servedName, launch.start.signal, headers);
  const served: ProcessServedModel = new ProcessServedModel({
    engine: launch.engine,
    model: launch.start.model,
    endpoint,
    upstreamModel,
    supervisor,
    headers,
    health: (signal) => healthOk(endpoint, signal, headers),
    onStop: () => track.delete(served),
  });
  track.add(served);
  return served;
}

export async function stopAll(track: Set<ProcessServedModel>): Promise<void> {
  await Promise.all([...track].map((served) => served.stop()));
}

/** How an engine serves one model; launch() adds the model's weights, the machine and the port. */
export interface ModelLaunch
  extends Omit<ProcessLaunch, "engine" | "options" | "start" | "program" | "args" | "servedName"> {
  args: (input: ServerArgsInput) => string[];
  /** Name the engine serves the model under; default: the model's own name. */
  servedName?: string | undefined;
}

/**
 * An engine that runs one process per served model (llama-server, vLLM, SGLang, MLX): the program it
 * runs, the formats it takes, how detection reports, the weights it is given, the models it serves
 * and stopping them all are the same for each; probing the install and the command line are each
 * engine's own.
 */
export abstract class OneProcessPerModelEngine<O extends ExternalEngineOptions> implements Engine {
  abstract readonly name: EngineName;
  protected readonly options: O;
  protected readonly formats: ModelFormat[];
  protected readonly served = new Set<ProcessServedModel>();
  readonly #defaultProgram: string;

  constructor(options: O, defaultProgram: string, formats: ModelFormat[]) {
    this.options = options;
    this.#defaultProgram = defaultProgram;
    this.formats = formats;
  }

  /** The program as configured, or the engine's usual name (looked up on PATH). */
  protected program(): string {
    return this.options.binary ?? this.#defaultProgram;
  }

  /** The program's absolute path on the PATH the engine gets; null when it is not there. */
  protected findProgram(): Promise<string | null> {
    return findExecutable(this.program(), pathOf(this.options));
  }

  /** The environment the engine and its version probes run with. */
  protected env(): Record<string, string | undefined> {
    return envFor(this.options);
  }

  /** The engine is missing or cannot run here, and why. */
  protected notInstalled(reason: string, version?: string | null): EngineDetection {
    return notInstalled(this.name, this.formats, reason, version ?? undefined);
  }

  /** The engine is installed and can use these accelerators. */
  protected detected(version: string | null | undefined, accelerators: Accelerator[]): EngineDetection {
    return {
      engine: this.name,
      installed: true,
      version: version ?? undefined,
      accelerators,
      formats: this.formats,
    };
  }

  /**
   * The detection of an engine that runs only on NVIDIA GPUs, or AMD's with a ROCm build (vLLM,
   * SGLang): usable when the machine has one, otherwise installed but idle.
   */
  protected detectedOnServingGpu(
    hardware: Hardware,
    version: string | null,
    product: string,
  ): EngineDetection {
    const accelerator = servingGpuAccelerator(hardware);
    if (accelerator !== null) return this.detected(version, [accelerator]);
    return this.notInstalled(
      `${product} is installed but this machine has no NVIDIA (or AMD) GPU for it`,
      version,
    );
  }

  abstract detect(hardware: Hardware): Promise<EngineDetection>;
  abstract start(options: StartOptions): Promise<ServedModel>;

  protected async launch(start: StartOptions, spec: ModelLaunch): Promise<ProcessServedModel> {
    const modelPath = weightsPath(this.name, start.model, this.formats);
    return launchProcessEngine(
      {
        ...spec,
        engine: this.name,
        options: this.options,
        start,
        program: this.program(),
        servedName: spec.servedName ?? start.model.name,
        args: (port) => spec.args({ modelPath, model: start.model, hardware: start.hardware, port }),
      },
      this.served,
    );
  }

  shutdown(): Promise<void> {
    return stopAll(this.served);
  }
}
