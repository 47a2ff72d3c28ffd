import { type Logger, prepareProxy } from "@beta9/http";
import {
  Beta9Error,
  type Hardware,
  type InferenceReport,
  type InferenceStatus,
  type PoolDirOffer,
  type ServedModelView,
  type Usage,
} from "@beta9/protocol";
import type {
  Engine,
  EngineDetection,
  EngineName,
  ModelFormat,
  ModelSpec,
  ServedModel,
} from "../engines/engine.ts";
import { freeMemory } from "./memory.ts";
import type { ServedList } from "./served-list.ts";

/** Where models come from: the model store, answering a name with weights and an estimate. */
export interface ModelCatalog {
  resolve(name: string, opts?: { contextSize?: number | undefined }): Promise<ModelSpec>;
  /**
   * The model's weights in format `to`, made from the stored ones once and kept (a GGUF dequantised to
   * safetensors for an engine that serves no GGUF); absent, no conversion happens on this machine.
   */
  convertFor?(
    spec: ModelSpec,
    to: ModelFormat,
    engine: EngineName,
    opts?: { pool?: PoolDirOffer | undefined; note?: ((message: string) => void) | undefined },
  ): Promise<ModelSpec>;
}

/** What a format can be converted to on the way to an engine (models/convert). */
/** What a stored format can be converted to on the machine, in the order tried. */
const CONVERTS_TO: Partial<Record<ModelFormat, readonly ModelFormat[]>> = { gguf: ["safetensors", "mlx"] };

export type ChooseEngine = (input: {
  format: ModelFormat;
  hardware: Hardware;
  detections: readonly EngineDetection[];
  preferred?: EngineName | undefined;
}) => EngineName;

export interface InferenceDeps {
  engines: ReadonlyMap<EngineName, Engine>;
  catalog: ModelCatalog;
  choose: ChooseEngine;
  hardware: Hardware;
  usage: () => Usage | null;
  log: Logger;
  /** The owner's preferred engine from the agent config. */
  preferred?: EngineName | undefined;
  /** How often every ready model is checked against its engine (default 5 s; 0: never). */
  watchIntervalMs?: number | undefined;
  /** Where what it serves is kept across restarts (absent: nothing is restored). */
  servedList?: ServedList | undefined;
}

/** A model lost again this soon after it was loaded again is not reloaded a second time: something is wrong. */
const REPAIR_WINDOW_MS = 60_000;

/**
 * What this machine serves: starts a model on the engine that fits its format and the hardware,
 * refuses one that will not fit in memory (with the numbers), and stops models. One start per model
 * at a time; a failed start leaves its error for /inference/status and can be tried again. A model
 * its engine no longer serves (unloaded behind the agent's back) stops counting as ready and is
 * loaded again.
 */
export class InferenceManager {
  readonly #deps: InferenceDeps;
  readonly #served = new Map<string, ServedModel>();
  /** Models a gateway started for a deployment, reported so that any gateway can unload them later. */
  readonly #forDeployment = new Set<string>();
  readonly #starting = new Map<string, Promise<ServedModel>>();
  readonly #errors = new Map<string, { engine: string; message: string }>();
  #detections: EngineDetection[] = [];
  #detecting: Promise<EngineDetection[]> | undefined;
  readonly #watch: NodeJS.Timeout | undefined;
  #checking = false;
  /** When each model was last loaded again after its engine lost it. */
  readonly #repairedAt = new Map<string, number>();
  readonly #listeners = new Set<() => void>();

  constructor(deps: InferenceDeps) {
    this.#deps = deps;
    const every = deps.watchIntervalMs ?? 5_000;
    if (every > 0) {
      this.#watch = setInterval(() => void this.checkServed(), every);
      this.#watch.unref();
    }
  }

  /** Asks each engine whether it still serves the models the agent counts as ready; repairs those it lost. */
  async checkServed(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      await Promise.all(
        [...this.#served].map(async ([name, served]) => {
          if (served.state() !== "ready" || this.#starting.has(name)) return;
          const seen = await served.check(AbortSignal.timeout(10_000)).catch(() => "unknown");
          if (seen === "lost" && this.#served.get(name) === served && served.state() === "ready")
            this.#repair(name, served);
        }),
      );
    } finally {
      this.#checking = false;
    }
  }

  #repair(name: string, lost: ServedModel): void {
    const { log } = this.#deps;
    const engine = lost.engine;
    this.#served.delete(name);
    const now = Date.now();
    const last = this.#repairedAt.get(name);
    if (last !== undefined && now - last < REPAIR_WINDOW_MS) {
      const message = `${engine} lost ${name} again within ${REPAIR_WINDOW_MS / 1000} s of loading it again; see the agent's log, then start it by hand (POST /inference/start)`;
      this.#errors.set(name, { engine, message });
      log.error({ model: name, engine }, message);
      void lost.stop().catch(() => {});
      this.#changed();
      return;
    }
    this.#repairedAt.set(name, now);
    log.warn({ model: name, engine }, `${engine} no longer serves ${name}; loading it again`);
    const repaired = lost
      .stop()
      .catch(() => {})
      .then(() => this.#start({ model: name, engine, contextSize: lost.model.contextSize }))
      .finally(() => {
        this.#starting.delete(name);
        this.#changed();
      });
    this.#starting.set(name, repaired);
    this.#changed();
    repaired.catch((err: unknown) => {
      this.#errors.set(name, {
        engine,
        message: `${engine} no longer served ${name} and loading it again failed: ${(err as Error).message}`,
      });
    });
  }

  /**
   * Calls `listener` when a model starts, becomes ready, fails or stops, so the gateway can hear of it
   * at once rather than at the next heartbeat; returns the function that stops the calls.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }

  /** Detect the engines once (later calls share the first); status waits for it. */
  detect(): Promise<EngineDetection[]> {
    this.#detecting ??= this.#detect();
    return this.#detecting;
  }

  async #detect(): Promise<EngineDetection[]> {
    const results = await Promise.all(
      [...this.#deps.engines.values()].map((e) =>
        e.detect(this.#deps.hardware).catch(
          (err: unknown): EngineDetection => ({
            engine: e.name,
            installed: false,
            accelerators: [],
            formats: [],
            reason: `detection failed: ${(err as Error).message}`,
          }),
        ),
      ),
    );
    this.#detections = results;
    return results;
  }

  get detections(): readonly EngineDetection[] {
    return this.#detections;
  }

  served(name: string): ServedModel | undefined {
    const s = this.#served.get(name);
    return s && s.state() !== "stopped" ? s : undefined;
  }

  list(): ServedModel[] {
    return [...this.#served.values()];
  }

  async start(req: {
    model: string;
    engine?: EngineName | undefined;
    contextSize?: number | undefined;
    /** A gateway starts it for a deployment (see ServedModelView.deployment). */
    deployment?: boolean | undefined;
    /** Other machines' conversions of it, to copy rather than convert (InferenceStartRequest.pool). */
    pool?: PoolDirOffer[] | undefined;
  }): Promise<ServedModel> {
    if (req.deployment) this.#forDeployment.add(req.model);
    // It will be served: the proxy's client loads while the model does (an idle agent never loads it).
    prepareProxy();
    const running = this.#served.get(req.model);
    if (running && running.state() === "ready") return running;
    const pending = this.#starting.get(req.model);
    if (pending) return pending;
    const p = this.#start(req)
      .then(async (served) => {
        await this.#remember(req);
        return served;
      })
      .finally(() => {
        this.#starting.delete(req.model);
        this.#changed();
      });
    this.#starting.set(req.model, p);
    this.#changed();
    return p;
  }

  async #start(req: {
    model: string;
    engine?: EngineName | undefined;
    contextSize?: number | undefined;
    pool?: PoolDirOffer[] | undefined;
  }): Promise<ServedModel> {
    const { log, hardware } = this.#deps;
    const stored = await this.#deps.catalog.resolve(req.model, { contextSize: req.contextSize });
    await this.detect();
    const { engineName, spec } = await this.#engineFor(stored, req.engine ?? this.#deps.preferred, req.pool);
    const engine = this.#deps.engines.get(engineName);
    if (!engine)
      throw new Beta9Error("engine_not_installed", `engine ${engineName} is not available on this agent`);
    this.#checkMemory(spec);
    const old = this.#served.get(req.model);
    if (old) await old.stop().catch(() => {});
    log.info({ model: spec.name, engine: engineName }, `starting ${spec.name} on ${engineName}`);
    try {
      const served = await engine.start({
        model: spec,
        hardware,
        onLog: (line) => log.info({ engine: engineName, model: spec.name }, line),
      });
      this.#served.set(spec.name, served);
      this.#errors.delete(spec.name);
      log.info({ model: spec.name, engine: engineName }, `${spec.name} is ready`);
      return served;
    } catch (err) {
      const message = (err as Error).message;
      this.#errors.set(spec.name, { engine: engineName, message });
      log.error({ model: spec.name, engine: engineName, err: message }, `could not start ${spec.name}`);
      if (err instanceof Beta9Error) throw err;
      throw new Beta9Error("engine_start_failed", message);
    }
  }

  /**
   * The engine for a stored model, and the weights it loads: the stored ones when an engine here takes
   * their format; else, when one takes a format they convert to (a GGUF on a machine with vLLM or
   * SGLang only), the converted ones, made once and reused. No engine either way: the first refusal.
   */
  async #engineFor(
    stored: ModelSpec,
    preferred: EngineName | undefined,
    pool: PoolDirOffer[] | undefined,
  ): Promise<{ engineName: EngineName; spec: ModelSpec }> {
    const choose = (format: ModelFormat) =>
      this.#deps.choose({ format, hardware: this.#deps.hardware, detections: this.#detections, preferred });
    try {
      return { engineName: choose(stored.format), spec: stored };
    } catch (refused) {
      const convertFor = this.#deps.catalog.convertFor?.bind(this.#deps.catalog);
      if (!convertFor) throw refused;
      // The first format it converts to that an engine here takes.
      let found: { to: ModelFormat; engineName: EngineName } | undefined;
      for (const to of CONVERTS_TO[stored.format] ?? []) {
        try {
          found = { to, engineName: choose(to) };
          break;
        } catch {}
      }
      if (!found) throw refused;
      const { to, engineName } = found;
      this.#deps.log.info(
        { model: stored.name, engine: engineName },
        `no engine here serves ${stored.format}: converting ${stored.name} to ${to} for ${engineName}`,
      );
      try {
        const note = (message: string) =>
          this.#deps.log.warn({ model: stored.name, engine: engineName }, message);
        const offer = pool?.find((o) => o.format === to);
        return { engineName, spec: await convertFor(stored, to, engineName, { pool: offer, note }) };
      } catch (err) {
        // Shown in /inference/status as any failed start is: the model, the engine, the reason.
        this.#errors.set(stored.name, { engine: engineName, message: (err as Error).message });
        throw err;
      }
    }
  }

  #checkMemory(spec: ModelSpec): void {
    if (!spec.memoryBytes) return;
    const usage = this.#deps.usage();
    const free = freeMemory(this.#deps.hardware, usage);
    const available = free.vram ?? free.ram;
    const where = free.vram === null ? "memory" : "GPU memory";
    if (spec.memoryBytes > available) {
      throw new Beta9Error(
        "insufficient_memory",
        `${spec.name} needs ${gib(spec.memoryBytes)} GiB but only ${gib(available)} GiB of ${where} is free here; stop another model, use a smaller quantization, or serve it with a shorter context (context_size)`,
      );
    }
  }

  /**
   * Start again what this machine's owner started by hand before the agent restarted (servedList;
   * a gateway places its deployments' replicas again itself), one model after
   * another in the background; a model that cannot start any more (removed from the store, too big
   * now) is dropped from the list with a warning.
   */
  async restore(): Promise<void> {
    const list = this.#deps.servedList;
    if (!list) return;
    for (const e of [...list.entries()]) {
      try {
        await this.start({ model: e.model, engine: e.engine, contextSize: e.context_size });
        this.#deps.log.info({ model: e.model }, `${e.model} is served again, as before the agent restarted`);
      } catch (err) {
        this.#deps.log.warn(
          { model: e.model, err: (err as Error).message },
          `${e.model} was served before the agent restarted but could not be started again; it is no longer listed in ${list.path}`,
        );
        await list.remove(e.model).catch(() => {});
      }
    }
  }

  async #remember(req: {
    model: string;
    engine?: EngineName | undefined;
    contextSize?: number | undefined;
    deployment?: boolean | undefined;
  }): Promise<void> {
    const list = this.#deps.servedList;
    // A deployment's replica is the gateway's to place again (it does when the machine is back, or
    // elsewhere meanwhile): started here too, it would be a second, unplaced copy.
    if (!list || req.deployment || this.#forDeployment.has(req.model)) return;
    try {
      await list.add({ model: req.model, engine: req.engine, context_size: req.contextSize });
    } catch (err) {
      // Serving goes on; only a restart would not bring it back.
      this.#deps.log.warn({ err: (err as Error).message }, `could not record that ${req.model} is served`);
    }
  }

  async #forget(model?: string): Promise<void> {
    await this.#deps.servedList?.remove(model).catch((err: unknown) => {
      this.#deps.log.warn({ err: (err as Error).message }, "could not record what stopped being served");
    });
  }

  /** Stop one model, or all of them; a restarted agent will not start them again. */
  async stop(model?: string): Promise<void> {
    await this.#stop(model);
    await this.#forget(model);
  }

  async #stop(model?: string): Promise<void> {
    if (model !== undefined) {
      const s = this.#served.get(model);
      if (!s) {
        // Listed but not running (its restore failed meanwhile): stopping it means not restoring it.
        if (this.#deps.servedList?.entries().some((e) => e.model === model)) return;
        throw new Beta9Error(
          "model_not_found",
          `${model} is not being served here; see GET /inference/status`,
        );
      }
      await s.stop();
      this.#served.delete(model);
      this.#errors.delete(model);
      this.#forDeployment.delete(model);
      this.#changed();
      this.#deps.log.info({ model }, `stopped ${model}`);
      return;
    }
    await Promise.all([...this.#served.values()].map((s) => s.stop().catch(() => {})));
    this.#served.clear();
    this.#errors.clear();
    this.#forDeployment.clear();
    this.#changed();
    this.#deps.log.info("stopped all models");
  }

  /** The agent is stopping: models stop, but stay listed, so the next agent serves them again. */
  async shutdown(): Promise<void> {
    clearInterval(this.#watch);
    await this.#stop().catch(() => {});
    await Promise.all([...this.#deps.engines.values()].map((e) => e.shutdown().catch(() => {})));
  }

  /** "running" if anything serves, else "starting", else "error" when the last try failed, else "stopped". */
  overall(): string {
    const states = [...this.#served.values()].map((s) => s.state());
    if (states.includes("ready")) return "running";
    if (this.#starting.size > 0 || states.includes("starting")) return "starting";
    if (this.#errors.size > 0 || states.includes("error")) return "error";
    return "stopped";
  }

  models(): ServedModelView[] {
    const out: ServedModelView[] = [];
    for (const s of this.#served.values()) {
      const state = s.state();
      out.push({
        name: s.model.name,
        engine: s.engine,
        state,
        memory_bytes: s.model.memoryBytes ?? null,
        context_size: s.model.contextSize ?? null,
        ...(state === "error" ? { error: s.stderrTail() || "the engine stopped" } : {}),
        ...(this.#forDeployment.has(s.model.name) ? { deployment: true } : {}),
        ...(s.model.convertedFrom ? { converted_to: s.model.format } : {}),
        ...(s.model.conversion ? { conversion: s.model.conversion } : {}),
      });
    }
    for (const [name, e] of this.#errors) {
      if (!this.#served.has(name))
        out.push({
          name,
          engine: e.engine,
          state: "error",
          memory_bytes: null,
          context_size: null,
          error: e.message,
        });
    }
    for (const name of this.#starting.keys()) {
      if (!this.#served.has(name) && !this.#errors.has(name))
        out.push({ name, engine: "", state: "starting", memory_bytes: null, context_size: null });
    }
    return out;
  }

  status(endpoint: string | null): InferenceStatus {
    const overall = this.overall();
    const lastError = [...this.#errors.values()].at(-1)?.message;
    return {
      status: overall,
      running: overall === "running",
      endpoint: overall === "running" ? endpoint : null,
      models: this.models(),
      engines: this.#detections.map((d) => ({
        engine: d.engine,
        installed: d.installed,
        ...(d.version ? { version: d.version } : {}),
        accelerators: d.accelerators,
        formats: d.formats,
        ...(d.reason ? { reason: d.reason } : {}),
      })),
      ...(lastError && overall === "error" ? { error: lastError } : {}),
    };
  }

  report(): InferenceReport {
    const free = freeMemory(this.#deps.hardware, this.#deps.usage());
    return {
      engines: this.#detections.map((d) => ({ engine: d.engine, installed: d.installed })),
      // Heartbeats stay lean: a conversion's provenance goes with the start's answer only.
      models: this.models().map(({ conversion: _, ...m }) => m),
      memory_free_bytes: free.ram,
      vram_free_bytes: free.vram,
    };
  }
}

const gib = (n: number) => (n / 2 ** 30).toFixed(1);
