import { CONTROL_PORT, GATEWAY_PORT } from "@beta9/protocol";
import {
  type AgentProc,
  allowTestModel,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  waitFor,
} from "../processes.ts";
import { cutLink, healLink, signal } from "./faults.ts";
import { Host } from "./host.ts";
import { createNetwork, type Network, namespaces } from "./network.ts";
import { type ClusterDatabase, clusterDatabase } from "./postgres.ts";
import { removeNamespaces, sweepStaleNamespaces } from "./teardown.ts";
import { openTunnel, type Tunnel } from "./tunnel.ts";

export interface ClusterOptions {
  /** Worker hosts (w1, w2, …), 3 unless given. */
  workers?: number;
  /** Gateway hosts (gw, gw2, …), 1 unless given: two gateways on one PostgreSQL need two. */
  gateways?: number;
}

/** A gateway on a cluster host. The test process reaches it from the client host (`url`). */
export interface ClusterGateway extends GatewayProc {
  host: Host;
  databaseUrl: string | undefined;
  args: string[];
}

/** A worker host with its agent: joined once, its agent started, stopped and restarted at will. */
export interface Worker {
  host: Host;
  name: string;
  configPath: string;
  machineId: string;
  /** The machine credential (also the bearer of the agent's control API). */
  token: string;
  /** The agent now running, if any. */
  agent: AgentProc | undefined;
  /** Every agent process started on this worker, the current one last. */
  runs: AgentProc[];
  /** Call the agent's control API on the worker's own loopback, as its owner. */
  control(method: string, path: string, body?: unknown): Promise<Response>;
}

/**
 * Several hosts on one machine, built from network namespaces: gateways, workers and a client on one
 * switch, running the real b9gateway and b9agent. The test process stands outside the cluster and
 * talks to it through tunnels: to gateways as the client host, to an agent's control API on that
 * worker's loopback. Faults: kill or hang an agent, cut a host off and heal it, restart a gateway or
 * an agent. destroy() kills everything and removes every namespace, also after failed tests.
 */
export class Cluster {
  readonly net: Network;
  readonly gatewayHosts: Host[];
  readonly workerHosts: Host[];
  readonly client: Host;
  readonly #tunnels = new Map<string, Promise<Tunnel>>();
  readonly #databases: ClusterDatabase[] = [];
  readonly #gateways = new Set<GatewayProc>();
  readonly #allGateways: ClusterGateway[] = [];
  readonly #workers: Worker[] = [];
  readonly #onExit = () => removeNamespaces(namespaces(this.net));
  #destroyed = false;

  private constructor(net: Network, gateways: number) {
    this.net = net;
    const hosts = net.hosts.map((h) => new Host(h));
    this.gatewayHosts = hosts.slice(0, gateways);
    this.client = hosts[gateways]!;
    this.workerHosts = hosts.slice(gateways + 1);
    // Should the test process end without destroy() (a crash), take the namespaces down with it.
    process.on("exit", this.#onExit);
  }

  static create(opts: ClusterOptions = {}): Cluster {
    sweepStaleNamespaces();
    const gateways = opts.gateways ?? 1;
    const workers = opts.workers ?? 3;
    const roles = [
      ...Array.from({ length: gateways }, (_, i) => (i === 0 ? "gw" : `gw${i + 1}`)),
      "client",
      ...Array.from({ length: workers }, (_, i) => `w${i + 1}`),
    ];
    return new Cluster(createNetwork(roles), gateways);
  }

  /** A fresh PostgreSQL database a gateway in the cluster can use (dropped by destroy()). */
  async database(): Promise<string> {
    const db = await clusterDatabase();
    this.#databases.push(db);
    return db.url;
  }

  /** A tunnel from this test process, leaving from `from`, to `host:port` (made once, then reused). */
  #tunnel(from: Host, host: string, port: number): Promise<Tunnel> {
    const key = `${from.ns} ${host}:${port}`;
    let t = this.#tunnels.get(key);
    if (!t) {
      t = openTunnel(from.launch.prefix, { host, port });
      this.#tunnels.set(key, t);
    }
    return t;
  }

  /**
   * Start the real b9gateway on a gateway host (the first unless given), on its address and the
   * default port, with SQLite in `dataDir` or PostgreSQL at `databaseUrl` (see database()).
   */
  async startGateway(
    opts: { host?: Host; dataDir?: string; databaseUrl?: string; args?: string[] } = {},
  ): Promise<ClusterGateway> {
    const host = opts.host ?? this.gatewayHosts[0]!;
    const args = opts.args ?? [];
    const gw = await startGateway({
      host: host.address,
      port: GATEWAY_PORT,
      ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
      ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
      args,
      ...host.launch,
      via: async () => (await this.#tunnel(this.client, host.address, GATEWAY_PORT)).url,
    });
    this.#gateways.add(gw);
    void gw.proc.exited.then(() => this.#gateways.delete(gw));
    const started = { ...gw, host, databaseUrl: opts.databaseUrl, args };
    this.#allGateways.push(started);
    return started;
  }

  /**
   * Stop a gateway (SIGTERM: a clean shutdown; SIGKILL: a crash) and start it again on the same store;
   * `whileDown` runs in between (e.g. wait until the agents have tried to reach it a few times).
   */
  async restartGateway(
    gw: ClusterGateway,
    opts: { signal?: NodeJS.Signals; whileDown?: () => Promise<void> } = {},
  ): Promise<ClusterGateway> {
    await gw.proc.stop(opts.signal ?? "SIGTERM");
    await opts.whileDown?.();
    return this.startGateway({
      host: gw.host,
      dataDir: gw.dataDir,
      ...(gw.databaseUrl ? { databaseUrl: gw.databaseUrl } : {}),
      args: gw.args,
    });
  }

  /**
   * Join a worker host to `gw` with `b9agent init` (run on that host, a fresh join token) and start
   * its agent, which may read the test model's folder. `args` go to init; `country` is bound by the token.
   */
  async joinWorker(
    gw: GatewayProc,
    host: Host,
    opts: { name?: string; args?: string[]; country?: string; start?: boolean } = {},
  ): Promise<Worker> {
    const name = opts.name ?? host.role;
    const configPath = await initAgent(gw, {
      name,
      args: opts.args ?? [],
      ...(opts.country ? { country: opts.country } : {}),
      ...host.launch,
    });
    const cfg = allowTestModel(configPath);
    const control = async (method: string, path: string, body?: unknown) => {
      const t = await this.#tunnel(host, "127.0.0.1", CONTROL_PORT);
      return fetch(t.url + path, {
        method,
        headers: {
          authorization: `Bearer ${cfg.machine.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    };
    const worker: Worker = {
      host,
      name,
      configPath,
      machineId: cfg.machine.id,
      token: cfg.machine.token,
      agent: undefined,
      runs: [],
      control,
    };
    this.#workers.push(worker);
    if (opts.start ?? true) {
      await this.startAgent(worker);
      // "connected" is the agent's view; the gateway marks it READY on its first heartbeat.
      await waitFor(
        async () =>
          (await gw.api<{ status: string }>("GET", `/api/v1/machines/${worker.machineId}`)).body.status ===
          "READY",
        { what: `${name} READY at the gateway`, timeoutMs: 20_000, proc: worker.agent!.proc },
      );
    }
    return worker;
  }

  /** Start the worker's agent (control API on the host's loopback, default port); waits until it is connected. */
  async startAgent(worker: Worker, opts: { waitConnected?: boolean } = {}): Promise<AgentProc> {
    if (
      worker.agent &&
      worker.agent.proc.child.exitCode === null &&
      worker.agent.proc.child.signalCode === null
    )
      throw new Error(`the agent on ${worker.name} is already running`);
    worker.agent = await startAgent(worker.configPath, {
      listen: `127.0.0.1:${CONTROL_PORT}`,
      ...(opts.waitConnected === undefined ? {} : { waitConnected: opts.waitConnected }),
      ...worker.host.launch,
    });
    worker.runs.push(worker.agent);
    return worker.agent;
  }

  /** Stop the worker's agent: SIGTERM lets it shut down cleanly, SIGKILL is a crash. */
  async stopAgent(worker: Worker, sig: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await worker.agent?.proc.stop(sig);
  }

  /** Stop the worker's agent (SIGTERM, or SIGKILL for a crash) and start it again with the same config. */
  async restartAgent(worker: Worker, sig: NodeJS.Signals = "SIGTERM"): Promise<AgentProc> {
    await this.stopAgent(worker, sig);
    return this.startAgent(worker);
  }

  /** The agent dies at once, without a word (SIGKILL); its engines notice and exit. */
  killAgent(worker: Worker): void {
    signal(this.#agentProc(worker).proc, "SIGKILL");
  }

  /** The agent hangs: it holds its connections but answers nothing (SIGSTOP) until thawed or killed. */
  freezeAgent(worker: Worker): void {
    signal(this.#agentProc(worker).proc, "SIGSTOP");
  }

  thawAgent(worker: Worker): void {
    signal(this.#agentProc(worker).proc, "SIGCONT");
  }

  #agentProc(worker: Worker): AgentProc {
    if (!worker.agent) throw new Error(`no agent runs on ${worker.name}`);
    return worker.agent;
  }

  /** Cut the host off the network (see faults.ts for how and why). */
  cut(host: Host): void {
    cutLink(this.net, host);
  }

  heal(host: Host): void {
    healLink(this.net, host);
  }

  /**
   * Every log line of every gateway and agent this cluster ran, merged in time order as
   * "HH:MM:SS.mmm host msg {fields}": what to read when a fault test fails.
   */
  timeline(): string {
    const rows: { at: number; line: string }[] = [];
    const add = (who: string, proc: { logs(): Record<string, unknown>[] }) => {
      for (const e of proc.logs()) {
        if (typeof e.time !== "number" || e.msg === "incoming request" || e.msg === "request completed")
          continue;
        const { time, msg, level: _l, pid: _p, hostname: _h, name: _n, ...rest } = e;
        const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest).slice(0, 300)}` : "";
        rows.push({
          at: time,
          line: `${new Date(time).toISOString().slice(11, 23)} ${who} ${String(msg)}${extra}`,
        });
      }
    };
    for (const g of this.#allGateways) add(g.host.role, g.proc);
    for (const w of this.#workers) for (const a of w.runs) add(w.name, a.proc);
    return rows
      .sort((a, b) => a.at - b.at)
      .map((r) => r.line)
      .join("\n");
  }

  /** Kill every process, close the tunnels, remove the namespaces and drop the databases. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    // Processes we know get a clean stop first (the gateway flushes its store), then none is spared.
    for (const w of this.#workers) w.agent?.proc.child.kill("SIGCONT");
    await Promise.allSettled([
      ...[...this.#gateways].map((g) => withTimeout(g.proc.stop(), 5_000)),
      ...this.#workers.map((w) => withTimeout(w.agent?.proc.stop() ?? Promise.resolve(null), 5_000)),
    ]);
    await Promise.allSettled([...this.#tunnels.values()].map(async (t) => (await t).close()));
    removeNamespaces(namespaces(this.net));
    process.off("exit", this.#onExit);
    await Promise.allSettled(this.#databases.map((d) => d.drop()));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([p, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]);
}
