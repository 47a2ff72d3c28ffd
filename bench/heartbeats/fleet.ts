/**
 * The heartbeat bench's simulated agents, run in worker processes (agent-worker.ts) so that one
 * process's open files, CPU and event-loop stalls do not limit or colour the gateway's figures.
 * A Fleet is one process's share: it joins its agents, opens their channels, beats on schedule and
 * keeps the round trips of the beats sent in the measuring window; the parent merges the reports.
 */
import { type ChildProcess, fork } from "node:child_process";
import type http2 from "node:http2";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { HEARTBEAT_STREAM_PATH, type Heartbeat, type HeartbeatAck, type Usage } from "@beta9/protocol";
import { AgentServer, type ChannelAgent, joinAgent, openChannel, SIM_HARDWARE } from "../common/sim-agent.ts";

/** Event-loop delay histograms time a 10 ms timer and record the whole period; lag is the excess. */
export const LAG_RESOLUTION_MS = 10;
export const lagMs = (ns: number) =>
  Number.isFinite(ns) ? Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS) : Number.NaN;

/** What a fleet is given: which agents are its own, and where and how they connect. */
export interface FleetSpec {
  /** Global agent indices; agent i joins replica i % gateways.length. */
  indices: number[];
  gateways: { host: string; port: number; base: string }[];
  token: string;
  protocol: number;
  intervalMs: number;
  concurrency: number;
  connectBudgetMs: number;
}

export interface ConnectReport {
  joined: number;
  connected: number;
  streams: number;
  joinErrors: number;
  channelErrors: number;
  /** Channels that failed to open and were dialled again. */
  redials: number;
  firstError: string;
}

/** Tries to open one agent's channel before it counts as an error. */
const CHANNEL_ATTEMPTS = 3;

/** Per replica: the beats of its agents in this fleet. */
export interface ReplicaBeats {
  rtts: number[];
  streams: number;
  sentInWindow: number;
  ackedInWindow: number;
  acksReceivedInWindow: number;
  missing: number;
  skipped: number;
  badAcks: number;
  streamsClosed: number;
  statuses: Record<string, number>;
}

export interface FleetReport {
  replicas: ReplicaBeats[];
  /** This process over the window: CPU (% of one core), event-loop lag p99 and max, RSS. */
  cpu: number;
  lagP99: number;
  lagMax: number;
  rssMb: number;
}

/** Counters and samples of one replica's agents in this process. */
class RunStats {
  windowStart = Number.POSITIVE_INFINITY;
  windowEnd = Number.POSITIVE_INFINITY;
  rtts: number[] = [];
  sentInWindow = 0;
  ackedInWindow = 0;
  acksReceivedInWindow = 0;
  skipped = 0;
  badAcks = 0;
  streamsClosed = 0;
  statuses: Record<string, number> = {};
  inWindow(t: number): boolean {
    return t >= this.windowStart && t < this.windowEnd;
  }
}

class SimAgent implements ChannelAgent {
  readonly id: string;
  readonly index: number;
  readonly stats: RunStats;
  credential = "";
  socket: Duplex | undefined;
  /** Where beats go: the HTTP/2 heartbeat stream, or the socket itself in the channel's idle form. */
  stream: { write(line: string): boolean; destroyed: boolean; writable: boolean } | undefined;
  #seq = 0;
  /** seq → performance.now() when written. */
  readonly sent = new Map<number, number>();
  #buf = "";

  constructor(index: number, stats: RunStats) {
    this.id = `bench-${String(index).padStart(5, "0")}`;
    this.index = index;
    this.stats = stats;
  }

  onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    if (headers[":path"] !== HEARTBEAT_STREAM_PATH || headers[":method"] !== "POST") {
      stream.respond({ ":status": 404 });
      stream.end();
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/x-ndjson" });
    stream.on("error", () => {});
    this.#attach(stream);
  }

  onIdleChannel(socket: Duplex): void {
    this.#attach(socket);
  }

  #attach(s: Duplex): void {
    this.stream = s;
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => this.#onData(chunk));
    s.on("close", () => {
      if (this.stream === s) this.stream = undefined;
      this.stats.streamsClosed++;
    });
    // Like the real agent: the first beat goes out as soon as the stream is open.
    this.beat();
  }

  beat(): void {
    const stream = this.stream;
    if (!stream || stream.destroyed || !stream.writable) {
      this.stats.skipped++;
      return;
    }
    const usage: Usage = {
      cpu_percent: 3 + (this.index % 17),
      memory_used_bytes: 8 * 1024 ** 3 + this.#seq,
      memory_total_bytes: SIM_HARDWARE.memory_total_bytes,
      gpus: [{ index: 0, memory_used_bytes: 512 * 1024 ** 2, utilization_percent: this.#seq % 100 }],
    };
    const hb: Heartbeat = {
      seq: this.#seq++,
      sent_at_ms: Date.now(),
      usage,
      running_jobs: 0,
      inference_status: "idle",
    };
    const now = performance.now();
    this.sent.set(hb.seq, now);
    if (this.stats.inWindow(now)) this.stats.sentInWindow++;
    stream.write(`${JSON.stringify(hb)}\n`);
  }

  #onData(chunk: string): void {
    const now = performance.now();
    this.#buf += chunk;
    for (let nl = this.#buf.indexOf("\n"); nl >= 0; nl = this.#buf.indexOf("\n")) {
      const line = this.#buf.slice(0, nl);
      this.#buf = this.#buf.slice(nl + 1);
      if (line.trim() === "") continue;
      let ack: HeartbeatAck;
      try {
        ack = JSON.parse(line) as HeartbeatAck;
      } catch {
        this.stats.badAcks++;
        continue;
      }
      const sentAt = this.sent.get(ack.seq);
      if (sentAt === undefined) {
        this.stats.badAcks++;
        continue;
      }
      this.sent.delete(ack.seq);
      const s = this.stats;
      if (s.inWindow(now)) s.acksReceivedInWindow++;
      if (s.inWindow(sentAt)) {
        s.ackedInWindow++;
        s.rtts.push(now - sentAt);
        s.statuses[ack.status] = (s.statuses[ack.status] ?? 0) + 1;
      }
    }
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.stream = undefined;
  }
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Fleet {
  readonly #spec: FleetSpec;
  readonly #stats: RunStats[];
  readonly #agents: SimAgent[];
  readonly #server = new AgentServer();
  readonly #ticker: NodeJS.Timeout;
  #lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  #cpu0 = process.cpuUsage();
  #wall0 = 0;

  constructor(spec: FleetSpec) {
    this.#spec = spec;
    this.#stats = spec.gateways.map(() => new RunStats());
    this.#agents = spec.indices.map((i) => new SimAgent(i, this.#stats[i % spec.gateways.length]!));
    // Heartbeat schedule: this fleet's agents' phases spread evenly over the interval; agents whose
    // stream is not open yet are skipped.
    const t0 = performance.now();
    const n = this.#agents.length;
    const slot = spec.intervalMs / Math.max(1, n);
    let due = 0;
    this.#ticker = setInterval(() => {
      const target = Math.floor((performance.now() - t0) / slot);
      for (; due < target; due++) this.#agents[due % n]!.beat();
    }, 2);
  }

  /** Join and open the channel of every agent, a bounded number at a time, then wait for the streams. */
  async connect(): Promise<ConnectReport> {
    const spec = this.#spec;
    const r: ConnectReport = {
      joined: 0,
      connected: 0,
      streams: 0,
      joinErrors: 0,
      channelErrors: 0,
      redials: 0,
      firstError: "",
    };
    const start = performance.now();
    await pool(this.#agents, spec.concurrency, async (a) => {
      if (performance.now() - start > spec.connectBudgetMs) return;
      const gw = spec.gateways[a.index % spec.gateways.length]!;
      try {
        await joinAgent(gw.base, spec.token, a);
        r.joined++;
      } catch (err) {
        r.joinErrors++;
        r.firstError ||= `join ${a.id}: ${(err as Error).message}`;
        return;
      }
      // As the real agent does, a channel that failed to open is dialled again (a loaded gateway
      // may take longer than the upgrade's timeout); errors count once per agent.
      for (let attempt = 1; ; attempt++) {
        try {
          await openChannel(gw, this.#server, a, spec.protocol);
          r.connected++;
          return;
        } catch (err) {
          if (attempt < CHANNEL_ATTEMPTS && performance.now() - start < spec.connectBudgetMs) {
            r.redials++;
            await sleep(1_000);
            continue;
          }
          r.channelErrors++;
          r.firstError ||= `channel ${a.id}: ${(err as Error).message}`;
          return;
        }
      }
    });
    // Streams open right after the upgrade; give the last ones a moment.
    const deadline = performance.now() + 10_000;
    while (this.#agents.some((a) => a.socket && !a.stream) && performance.now() < deadline) await sleep(50);
    r.streams = this.#agents.filter((a) => a.stream).length;
    return r;
  }

  /** The measuring window starts now, on this process's clock. */
  startWindow(durationMs: number): void {
    this.#wall0 = performance.now();
    for (const s of this.#stats) {
      s.windowStart = this.#wall0;
      s.windowEnd = this.#wall0 + durationMs;
    }
    this.#lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
    this.#lag.enable();
    this.#cpu0 = process.cpuUsage();
  }

  #cpuPct = Number.NaN;

  /** The window ended: this process's own figures over it (late acks still count until report). */
  endWindow(): void {
    this.#lag.disable();
    const wallS = (performance.now() - this.#wall0) / 1000;
    const c = process.cpuUsage(this.#cpu0);
    this.#cpuPct = ((c.user + c.system) / 1e6 / wallS) * 100;
  }

  /** Beats sent in the window and not acked yet. */
  pendingInWindow(): number {
    let c = 0;
    for (const a of this.#agents) for (const t of a.sent.values()) if (a.stats.inWindow(t)) c++;
    return c;
  }

  report(): FleetReport {
    const replicas = this.#stats.map((s): ReplicaBeats => {
      const mine = this.#agents.filter((a) => a.stats === s);
      let missing = 0;
      for (const a of mine) for (const t of a.sent.values()) if (s.inWindow(t)) missing++;
      return {
        rtts: s.rtts,
        streams: mine.filter((a) => a.stream).length,
        sentInWindow: s.sentInWindow,
        ackedInWindow: s.ackedInWindow,
        acksReceivedInWindow: s.acksReceivedInWindow,
        missing,
        skipped: s.skipped,
        badAcks: s.badAcks,
        streamsClosed: s.streamsClosed,
        statuses: s.statuses,
      };
    });
    return {
      replicas,
      cpu: this.#cpuPct,
      lagP99: lagMs(this.#lag.percentile(99)),
      lagMax: lagMs(this.#lag.max),
      rssMb: process.memoryUsage().rss / 1024 / 1024,
    };
  }

  close(): void {
    clearInterval(this.#ticker);
    for (const a of this.#agents) a.close();
    this.#server.h2.close();
  }
}

/** Merge the fleets' reports: samples and counters add up; lag is the worst process's, CPU and RSS the sum. */
export function mergeReports(reports: FleetReport[]): FleetReport {
  const n = reports[0]?.replicas.length ?? 0;
  const replicas = Array.from({ length: n }, (_, r): ReplicaBeats => {
    const parts = reports.map((x) => x.replicas[r]!);
    const statuses: Record<string, number> = {};
    for (const p of parts)
      for (const [k, v] of Object.entries(p.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    const sum = (f: (b: ReplicaBeats) => number) => parts.reduce((a, b) => a + f(b), 0);
    return {
      rtts: parts.flatMap((p) => p.rtts),
      streams: sum((b) => b.streams),
      sentInWindow: sum((b) => b.sentInWindow),
      ackedInWindow: sum((b) => b.ackedInWindow),
      acksReceivedInWindow: sum((b) => b.acksReceivedInWindow),
      missing: sum((b) => b.missing),
      skipped: sum((b) => b.skipped),
      badAcks: sum((b) => b.badAcks),
      streamsClosed: sum((b) => b.streamsClosed),
      statuses,
    };
  });
  return {
    replicas,
    cpu: reports.reduce((a, b) => a + b.cpu, 0),
    lagP99: Math.max(...reports.map((x) => x.lagP99)),
    lagMax: Math.max(...reports.map((x) => x.lagMax)),
    rssMb: reports.reduce((a, b) => a + b.rssMb, 0),
  };
}

type FleetOp = "connect" | "startWindow" | "endWindow" | "pendingInWindow" | "report" | "close";
export type FleetRequest =
  | { id: number; op: "spec"; spec: FleetSpec }
  | { id: number; op: FleetOp; arg?: number };
export type FleetReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

const WORKER = new URL("./agent-worker.ts", import.meta.url);

/** One worker process holding a Fleet, driven over IPC. */
class FleetProc {
  readonly child: ChildProcess;
  #next = 0;
  readonly #waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor() {
    this.child = fork(WORKER, [], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "advanced",
    });
    this.child.on("message", (m: FleetReply) => {
      const w = this.#waiting.get(m.id);
      this.#waiting.delete(m.id);
      if (m.ok) w?.resolve(m.value);
      else w?.reject(new Error(m.error));
    });
    this.child.once("exit", (code, signal) => {
      for (const w of this.#waiting.values()) w.reject(new Error(`agent worker exited (${code ?? signal})`));
      this.#waiting.clear();
    });
  }

  call<T>(op: FleetOp | "spec", arg?: number | FleetSpec): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const msg =
        op === "spec" ? { id, op, spec: arg as FleetSpec } : { id, op, arg: arg as number | undefined };
      this.child.send(msg satisfies FleetRequest);
    });
  }
}

/**
 * The agents of one run spread over `procs` worker processes (agent i in process i % procs), each
 * under the per-process open-files limit; every call goes to all of them and their answers are merged.
 */
export class AgentProcs {
  readonly #procs: FleetProc[];

  private constructor(procs: FleetProc[]) {
    this.#procs = procs;
  }

  static async start(spec: Omit<FleetSpec, "indices">, total: number, procs: number): Promise<AgentProcs> {
    const ps = Array.from({ length: Math.max(1, Math.min(procs, total)) }, () => new FleetProc());
    const fleet = new AgentProcs(ps);
    await Promise.all(
      ps.map((p, k) =>
        p.call("spec", {
          ...spec,
          indices: Array.from({ length: total }, (_, i) => i).filter((i) => i % ps.length === k),
        }),
      ),
    );
    return fleet;
  }

  get count(): number {
    return this.#procs.length;
  }

  #all<T>(op: FleetOp, arg?: number): Promise<T[]> {
    return Promise.all(this.#procs.map((p) => p.call<T>(op, arg)));
  }

  async connect(): Promise<ConnectReport> {
    const rs = await this.#all<ConnectReport>("connect");
    const sum = (f: (r: ConnectReport) => number) => rs.reduce((a, r) => a + f(r), 0);
    return {
      joined: sum((r) => r.joined),
      connected: sum((r) => r.connected),
      streams: sum((r) => r.streams),
      joinErrors: sum((r) => r.joinErrors),
      channelErrors: sum((r) => r.channelErrors),
      redials: sum((r) => r.redials),
      firstError: rs.map((r) => r.firstError).find(Boolean) ?? "",
    };
  }

  async startWindow(durationMs: number): Promise<void> {
    await this.#all("startWindow", durationMs);
  }

  async endWindow(): Promise<void> {
    await this.#all("endWindow");
  }

  async pendingInWindow(): Promise<number> {
    return (await this.#all<number>("pendingInWindow")).reduce((a, b) => a + b, 0);
  }

  async report(): Promise<FleetReport> {
    return mergeReports(await this.#all<FleetReport>("report"));
  }

  /** Close every agent and end the workers (killed if they do not go within a few seconds). */
  async close(): Promise<void> {
    await Promise.all(
      this.#procs.map(async (p) => {
        const exited = new Promise<void>((r) => {
          if (p.child.exitCode !== null || p.child.signalCode !== null) r();
          else p.child.once("exit", () => r());
        });
        await p.call("close").catch(() => {});
        const t = setTimeout(() => p.child.kill("SIGKILL"), 5_000);
        await exited;
        clearTimeout(t);
      }),
    );
  }

  /** At exit on a signal: no waiting. */
  killNow(): void {
    for (const p of this.#procs) if (p.child.exitCode === null) p.child.kill("SIGKILL");
  }
}
