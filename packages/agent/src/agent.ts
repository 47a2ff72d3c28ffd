import { dirname, join as joinPath } from "node:path";
import type { Logger } from "@beta9/http";
import { Beta9Error, type Hardware } from "@beta9/protocol";
import { Backoff, sleep } from "./channel/backoff.ts";
import { Connector } from "./channel/connector.ts";
import { type HeartbeatContext, heartbeatStream } from "./channel/heartbeat-stream.ts";
import { GatewayRefused, join } from "./channel/join.ts";
import { GatewayUntrusted, gatewayDispatcher } from "./channel/tls.ts";
import { type AgentConfig, ConfigError, gatewayUrl, saveConfig } from "./config/config-file.ts";
import { blobRoutes } from "./control-api/blob-routes.ts";
import { inferenceRoutes } from "./control-api/inference-routes.ts";
import { followsTailnet, listenAddresses, tailnetRecheckMs } from "./control-api/listen.ts";
import { channelInference, openaiRoutes } from "./control-api/openai-routes.ts";
import { controlRoutes, installControlAuth } from "./control-api/routes.ts";
import { ControlServer } from "./control-api/server.ts";
import { EngineEnergy } from "./energy/engine-energy.ts";
import { openMachinePower } from "./energy/machine-power.ts";
import { registerEnergyMetrics } from "./energy/metrics.ts";
import { BuiltinEngine } from "./engines/builtin-engine.ts";
import { chooseEngine, EngineChoiceError } from "./engines/choose.ts";
import { ENGINE_NAMES, type EngineName } from "./engines/engine.ts";
import type { MlxEngine } from "./engines/mlx.ts";
import type { OllamaEngine } from "./engines/ollama.ts";
import { EngineRegistry, externalEngines } from "./engines/registry.ts";
import { detectHardware, UsageSampler } from "./hardware/index.ts";
import { InferenceManager } from "./inference/manager.ts";
import { capacityOf, StoreCatalog } from "./inference/model-catalog.ts";
import { RequestActivity, trackRequests } from "./inference/request-activity.ts";
import { ServedList } from "./inference/served-list.ts";
import { JobManager } from "./jobs/manager.ts";
import { jobRoutes } from "./jobs/routes.ts";
import { agentMetrics } from "./metrics.ts";
import { PullTracker } from "./models/pull-tracker.ts";
import { ModelStore } from "./models/store.ts";
import { isTailscaleIPv4, tailnetAddresses } from "./network/tailscale.ts";
import { killAllChildrenNow } from "./process/child.ts";
import { PidfileRegistry } from "./process/pidfiles.ts";
import { AgentState } from "./state.ts";

export interface AgentOptions {
  config: AgentConfig;
  configPath: string;
  log: Logger;
  listen?: string[] | undefined;
  hardware?: Hardware;
}

/** The agent: joins once, keeps the channel to the gateway, heartbeats, and serves the control API. */
export class Agent {
  readonly state: AgentState;
  readonly control: ControlServer;
  readonly #log: Logger;
  readonly #configPath: string;
  #config: AgentConfig;
  #connector: Connector | undefined;
  /** What the channel's idle form beats with (the heartbeat stream's own context). */
  #heartbeats: HeartbeatContext | undefined;
  inference!: InferenceManager;
  jobs!: JobManager;
  energy!: EngineEnergy;
  /** Pulls under way and requests per served model, for the dashboard. */
  readonly pulls = new PullTracker();
  readonly activity = new RequestActivity();
  #intervalMs: number;
  #bound: string[] = [];
  /** The tailnet addresses (host:port) the control API listens on: what users call /v1 at. */
  readonly #tailnetBound: string[] = [];
  /** Tailnet addresses that could not be bound yet, warned about once. */
  readonly #tailnetWarned = new Set<string>();
  #tailnetTimer: NodeJS.Timeout | undefined;
  #tailnetChecking = false;

  private constructor(opts: AgentOptions, hardware: Hardware) {
    this.#config = opts.config;
    this.#configPath = opts.configPath;
    this.#log = opts.log.child({ machine_id: opts.config.machine.id });
    this.#intervalMs = opts.config.heartbeat_interval_seconds * 1000;
    this.state = new AgentState({
      machineId: opts.config.machine.id,
      pool: opts.config.pool,
      gateway: gatewayUrl(opts.config),
      hardware,
    });
    this.control = new ControlServer(this.#log);
  }

  static async create(opts: AgentOptions): Promise<Agent> {
    const hardware =
      opts.hardware ??
      (await detectHardware(undefined, {
        onProblem: (source, err) => opts.log.debug({ source, err: String(err) }, "hardware probe failed"),
      }));
    const agent = new Agent(opts, hardware);
    const sampler = new UsageSampler(hardware);
    const home = dirname(opts.configPath);
    // Engines a previous agent left behind (it was killed before it could stop them) go first.
    const pidfiles = new PidfileRegistry(joinPath(home, "run", "engines"));
    const swept = await pidfiles.sweep();
    if (swept.killed.length > 0)
      agent.#log.warn({ pids: swept.killed }, "stopped engines left behind by a previous agent");
    process.on("exit", killAllChildrenNow);
    const keepWarm = opts.config.inference?.keep_engine_warm !== false;
    const builtin = new BuiltinEngine({
      pidfiles,
      keepWarm,
      onLog: (line) => agent.#log.info({ engine: "builtin" }, line),
    });
    const engines = new EngineRegistry(builtin, externalEngines({ common: { pidfiles } }));
    const models = opts.config.models ?? {};
    const store = new ModelStore({
      dir: models.dir ?? joinPath(home, "models"),
      allowedDirs: models.allowed_dirs,
      huggingFaceBaseUrl: models.huggingface_url,
      huggingFaceToken: models.huggingface_token ?? (process.env.HF_TOKEN || undefined),
      allowPrivateSources: models.allow_private_sources,
      maxDownloadBytes: models.max_model_bytes,
      maxPartialBytes: models.max_partial_bytes,
    });
    store.sweepDownloads().then(
      (removed) => {
        if (removed.length > 0)
          agent.#log.info({ removed: removed.length }, "removed stale unfinished downloads");
      },
      (err: unknown) => agent.#log.warn({ err: String(err) }, "could not sweep unfinished downloads"),
    );
    const preferred = opts.config.inference?.engine;
    if (preferred !== undefined && !ENGINE_NAMES.includes(preferred as EngineName)) {
      throw new ConfigError(`inference.engine must be one of ${ENGINE_NAMES.join(", ")}, not ${preferred}`);
    }
    const catalog = new StoreCatalog(store, {
      ollama: engines.get("ollama") as OllamaEngine | undefined,
      mlx: engines.get("mlx") as MlxEngine | undefined,
      capacityBytes: capacityOf(hardware),
      pool: {
        gateway: () => agent.state.gateway,
        machine: () => ({ id: agent.#config.machine.id, token: agent.#config.machine.token }),
        dispatcher: gatewayDispatcher(opts.config),
      },
    });
    agent.inference = new InferenceManager({
      engines: new Map(engines.list().map((e) => [e.name, e])),
      catalog,
      choose: ({ format, hardware: hw, detections, preferred: prefer }) => {
        try {
          return chooseEngine({
            format,
            hardware: hw,
            detections,
            prefer,
            strict: prefer !== undefined && prefer !== preferred,
          }).engine;
        } catch (err) {
          if (err instanceof EngineChoiceError) throw new Beta9Error("no_engine", err.message);
          throw err;
        }
      },
      hardware,
      usage: () => agent.state.usage,
      log: agent.#log,
      preferred: preferred as EngineName | undefined,
      servedList: new ServedList(joinPath(home, "served.json")),
    });
    void agent.inference.detect();
    if (keepWarm) {
      // In the background: the agent joins meanwhile; a start that comes first shares this launch.
      builtin.warm(hardware).then(
        () => agent.#log.info({ engine: "builtin" }, "builtin engine kept warm, no model loaded"),
        (err: unknown) =>
          agent.#log.warn(
            { engine: "builtin", err: (err as Error).message },
            "could not keep the builtin engine warm; it starts with the first model",
          ),
      );
    }
    // Found in the background (GPU tools can take seconds); the first answer or job waits for it.
    const power = openMachinePower({
      hardware,
      onProblem: (source, message) => agent.#log.warn({ source }, message),
    });
    agent.energy = new EngineEnergy(power);
    const metrics = agentMetrics(agent.state);
    registerEnergyMetrics(metrics, agent.energy);
    const ctx = {
      state: agent.state,
      log: agent.#log,
      metrics,
      energy: agent.energy,
      power: () => agent.energy.machinePower(),
      credential: () => agent.#config.machine.token,
      fromGateway: agent.control.fromGateway,
      intervalMs: () => agent.#intervalMs,
      sampleUsage: () => sampler.sample(),
      onSilentGateway: () => agent.#connector?.drop(),
      onRedial: () => agent.#connector?.redial(),
      inferenceReport: () => agent.inference.report(),
      // Set up below, before the channel opens: beats start only once the agent runs.
      runners: () => agent.jobs?.runners(),
      inference: agent.inference,
      models: agent.pulls.track(catalog),
      endpoint: () => agent.openaiBaseUrl,
      onInterval: (ms: number) => {
        // Follow the gateway when it wants beats more often than configured; never less often.
        agent.#intervalMs = Math.min(opts.config.heartbeat_interval_seconds * 1000, ms);
      },
    };
    installControlAuth(agent.control.app, ctx);
    trackRequests(agent.control.app, agent.activity, { fromGateway: agent.control.fromGateway });
    await agent.control.app.register(controlRoutes, ctx);
    await agent.control.app.register(heartbeatStream, ctx);
    agent.#heartbeats = ctx;
    await agent.control.app.register(inferenceRoutes, ctx);
    await agent.control.app.register(blobRoutes, { store, fromGateway: agent.control.fromGateway });
    const openai = {
      inference: agent.inference,
      activity: agent.activity,
      log: agent.#log,
      energy: agent.energy,
    };
    await agent.control.app.register(openaiRoutes, openai);
    agent.control.onChannelStream(channelInference(openai));
    agent.jobs = new JobManager({
      home,
      hardware: () => agent.state.hardware,
      pidfiles,
      log: agent.#log,
      onCounts: (running, total) => agent.state.setJobCounts(running, total),
      runner: jobRunner(process.env.B9AGENT_JOB_RUNNER),
      rootfsDirs: opts.config.jobs?.rootfs_dirs,
      podman: opts.config.jobs?.podman,
      energy: power,
      packages: { index: opts.config.jobs?.package_index, findLinks: opts.config.jobs?.find_links },
      maxEnvBytes: opts.config.jobs?.max_env_bytes,
    });
    await agent.jobs.restore();
    await agent.control.app.register(jobRoutes, { jobs: agent.jobs });
    const explicit = opts.listen ?? opts.config.control.listen;
    if (followsTailnet(explicit)) {
      // Loopback must work; the tailnet address may not be up yet, so it is looked for again later.
      agent.#bound = await agent.control.listen([{ host: "127.0.0.1", port: opts.config.control.port }]);
      await agent.#listenOnTailnet();
      agent.#tailnetTimer = setInterval(() => void agent.#listenOnTailnet(), tailnetRecheckMs());
      agent.#tailnetTimer.unref();
    } else {
      agent.#bound = await agent.control.listen(listenAddresses(opts.config.control.port, explicit));
    }
    agent.#log.info(
      { addresses: agent.#bound, gpus: hardware.gpus.map((g) => g.name), cores: hardware.cpu_cores },
      `control API listening on ${agent.#bound.join(", ")}`,
    );
    // What it served before it stopped or died, in the background: the agent joins meanwhile.
    void agent.inference.restore();
    return agent;
  }

  get controlAddresses(): string[] {
    return this.#bound;
  }

  /**
   * This machine's own OpenAI-compatible base URL (authenticated): on its tailnet address when it
   * listens there (that is where the fork's users reach it), else on the first control address.
   */
  get openaiBaseUrl(): string | null {
    const address =
      this.#tailnetBound[0] ??
      this.#bound.find((a) => isTailscaleIPv4(a.replace(/:\d+$/, ""))) ??
      this.#bound[0];
    return address ? `http://${address}/v1` : null;
  }

  /** Listen on each tailnet address not listened on yet, on the loopback's port; never 0.0.0.0. */
  async #listenOnTailnet(): Promise<void> {
    if (this.#tailnetChecking || !this.#bound[0]) return;
    this.#tailnetChecking = true;
    try {
      const port = Number(/:(\d+)$/.exec(this.#bound[0])?.[1]);
      for (const host of tailnetAddresses()) {
        if (host === "0.0.0.0" || this.#bound.includes(`${host}:${port}`)) continue;
        try {
          const [address] = await this.control.listen([{ host, port }]);
          if (!address) continue;
          this.#bound.push(address);
          this.#tailnetBound.push(address);
          if (this.#tailnetTimer) this.#log.info({ address }, `control API now also listening on ${address}`);
        } catch (err) {
          // Typically Tailscale is not up yet (EADDRNOTAVAIL): said once, then tried again quietly.
          const level = this.#tailnetWarned.has(host) ? "debug" : "warn";
          this.#tailnetWarned.add(host);
          this.#log[level](
            { host, err: String(err) },
            `cannot listen on the tailnet address ${host} yet; will try again`,
          );
        }
      }
    } finally {
      this.#tailnetChecking = false;
    }
  }

  /** Join if this machine has a join token to trade, then keep the channel up until stop(). */
  async run(): Promise<void> {
    // A join token still in the config was given by `b9agent init` and not yet traded (the gateway
    // was unreachable then): join with it, presenting the credential the machine may already have.
    if (!this.#config.machine.token || this.#config.machine.join_token) await this.#join(true);
    this.#connector = new Connector({
      config: () => this.#config,
      state: this.state,
      log: this.#log,
      serve: (socket) => this.control.serveChannel(socket),
      heartbeats: this.#heartbeats,
      rejoin: (reason) => this.#rejoin(reason),
    });
    await this.#connector.start();
  }

  async stop(): Promise<void> {
    clearInterval(this.#tailnetTimer);
    // Jobs first, while the channel still carries their last events to the gateway.
    await this.jobs.shutdown();
    await this.#connector?.stop();
    await this.inference.shutdown();
    await this.energy.close();
    await this.control.close();
  }

  async #rejoin(reason: GatewayRefused): Promise<void> {
    if (!this.#config.machine.join_token) {
      throw new ConfigError(
        `the gateway refused this machine's credential (${reason.message}). Create a new join token with \`b9 token create\` and run: b9agent init --gateway ${gatewayUrl(this.#config).replace(/^http:\/\//, "")} --token NEW_TOKEN`,
      );
    }
    await this.#join(false);
  }

  /** Trade the join token for a credential; network trouble is retried, a refused token is final. */
  async #join(first: boolean): Promise<void> {
    const backoff = new Backoff();
    for (;;) {
      try {
        const res = await join(this.#config, this.state.hardware);
        this.#config = {
          ...this.#config,
          pool: res.pool,
          machine: { ...this.#config.machine, token: res.credential, join_token: undefined },
        };
        await saveConfig(this.#config, this.#configPath);
        this.#log.info({ pool: res.pool }, first ? "joined the gateway" : "joined the gateway again");
        return;
      } catch (err) {
        if (err instanceof GatewayRefused && err.status > 0 && err.status < 500) {
          throw new ConfigError(`the gateway refused to let this machine join: ${err.message}`);
        }
        // Waiting cannot fix a certificate the agent does not trust, or an unreadable ca_file.
        if (err instanceof GatewayUntrusted || err instanceof ConfigError) throw new ConfigError(err.message);
        this.#log.warn({ err: String(err) }, "cannot reach the gateway to join; will retry");
        await sleep(backoff.next());
      }
    }
  }
}

/** B9AGENT_JOB_RUNNER forces a job runner (native, bwrap); unset: the best this machine has. */
function jobRunner(value: string | undefined): "native" | "bwrap" | undefined {
  if (value === undefined || value === "") return undefined;
  if (value === "native" || value === "bwrap") return value;
  throw new ConfigError(`B9AGENT_JOB_RUNNER must be native or bwrap, not ${value}`);
}
