import type { Logger } from "@beta9/http";
import type { Hardware } from "@beta9/protocol";
import { Backoff, sleep } from "./channel/backoff.ts";
import { Connector } from "./channel/connector.ts";
import { heartbeatStream } from "./channel/heartbeat-stream.ts";
import { GatewayRefused, join } from "./channel/join.ts";
import { type AgentConfig, ConfigError, gatewayUrl, saveConfig } from "./config/config-file.ts";
import { listenAddresses } from "./control-api/listen.ts";
import { controlRoutes } from "./control-api/routes.ts";
import { ControlServer } from "./control-api/server.ts";
import { detectHardware, UsageSampler } from "./hardware/index.ts";
import { agentMetrics } from "./metrics.ts";
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
  #intervalMs: number;
  #bound: string[] = [];

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
    const ctx = {
      state: agent.state,
      log: agent.#log,
      metrics: agentMetrics(agent.state),
      credential: () => agent.#config.machine.token,
      fromGateway: agent.control.fromGateway,
      intervalMs: () => agent.#intervalMs,
      sampleUsage: () => sampler.sample(),
      onSilentGateway: () => agent.#connector?.drop(),
      onInterval: (ms: number) => {
        // Follow the gateway when it wants beats more often than configured; never less often.
        agent.#intervalMs = Math.min(opts.config.heartbeat_interval_seconds * 1000, ms);
      },
    };
    await agent.control.app.register(controlRoutes, ctx);
    await agent.control.app.register(heartbeatStream, ctx);
    agent.#bound = await agent.control.listen(
      listenAddresses(opts.config.control.port, opts.listen ?? opts.config.control.listen),
    );
    agent.#log.info(
      { addresses: agent.#bound, gpus: hardware.gpus.map((g) => g.name), cores: hardware.cpu_cores },
      `control API listening on ${agent.#bound.join(", ")}`,
    );
    return agent;
  }

  get controlAddresses(): string[] {
    return this.#bound;
  }

  /** Join if this machine has no credential yet, then keep the channel up until stop(). */
  async run(): Promise<void> {
    if (!this.#config.machine.token) await this.#join(true);
    this.#connector = new Connector({
      config: () => this.#config,
      state: this.state,
      log: this.#log,
      serve: (socket) => this.control.serveChannel(socket),
      rejoin: (reason) => this.#rejoin(reason),
    });
    await this.#connector.start();
  }

  async stop(): Promise<void> {
    await this.#connector?.stop();
    await this.control.close();
  }

  async #rejoin(reason: GatewayRefused): Promise<void> {
    if (!this.#config.machine.join_token) {
      throw new ConfigError(
        `the gateway refused this machine's credential (${reason.message}). Create a new join token with \`b9 token create\` and run: b9agent init --gateway ${this.#config.gateway.host}:${this.#config.gateway.port} --token NEW_TOKEN`,
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
        this.#log.warn({ err: String(err) }, "cannot reach the gateway to join; will retry");
        await sleep(backoff.next());
      }
    }
  }
}
