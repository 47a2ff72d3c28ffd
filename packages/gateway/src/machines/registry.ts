import type { ClientHttp2Stream } from "node:http2";
import type { Logger } from "@beta9/http";
import type {
  Hardware,
  InferenceReport,
  JobRunners,
  MachineStatus,
  MachineView,
  ServedModelView,
  Usage,
} from "@beta9/protocol";
import type { Machine, Store } from "@beta9/store";
import { type Liveness, type LivenessConfig, machineStatus, silenceLimits } from "./liveness.ts";

const DEFAULT_PAGE = 500;
const FLUSH_SLICE = 500;
/** Machines the sweep looks at per turn of the event loop. */
const SWEEP_SLICE = 2_000;

/**
 * How the gateway reaches a machine's models. A Beta9 agent: its channel, whose `request` opens an
 * HTTP/2 stream. A fork agent: no channel, but the OpenAI-compatible HTTP server its keepalives report
 * (`http`: Ollama's /v1 at the machine's tailnet address). The registry can close either.
 */
export interface AgentLink {
  /** `graceful`: replaced by a newer channel of the same agent (see AgentChannel.close). */
  close(reason: string, graceful?: boolean): void;
  request?(init: {
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: string;
  }): ClientHttp2Stream;
  http?: { origin: string };
}

/**
 * A machine as the replica holding its agent channel sees it (published through the store for the
 * other replicas): everything but what every replica reads from the store alike.
 */
export type HeldMachine = Omit<MachineView, "id" | "hardware" | "joined_at">;

/** What routing knows of a machine when it decides whether a replica there may take a request. */
export interface MachineFacts {
  id: string;
  pool: string;
  country: string | null;
  hardware: Hardware;
}

/** Whether a request may go to a machine that serves its model (the scheduler says which may). */
export type MachineFilter = (m: MachineFacts) => boolean;

/** A machine that can take a request for a model now. */
export interface ServingMachine {
  id: string;
  link: AgentLink;
}

interface Entry {
  row: Machine;
  /** Parsed once: list views of 10,000 machines should not parse 10,000 JSON strings. */
  hardware: Hardware;
  live: Liveness;
  link: AgentLink | null;
  /** When the link was attached: a new channel's silence counts from then, not from an older beat. */
  linkedAt: number;
  status: MachineStatus;
}

/**
 * The gateway's view of its machines: rows from the store plus liveness kept in memory. Heartbeats
 * touch memory only; their times reach the store in one batch per interval, so 10,000 agents cost a
 * handful of writes, not 2,000 a second.
 */
export class MachineRegistry {
  readonly #store: Store;
  readonly #log: Logger;
  readonly cfg: LivenessConfig;
  readonly #entries = new Map<string, Entry>();
  readonly #dirty = new Map<string, number>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #flushTimer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  heartbeats = 0;
  /** Machines alive when this gateway started that have not beaten to it yet, and until when to wait. */
  readonly #returning = new Set<string>();
  #returnBy = 0;
  /** Requests waiting for returning machines (see whileSettling): each checks again when one is back. */
  readonly #settlingWaiters = new Set<() => void>();
  /** Machines whose channel another replica holds, as that replica last published them. */
  #peerHeld = new Map<string, HeldMachine>();
  /** The latest in join order put here (removed since, maybe: an upper bound is all it must be). */
  #last: Machine | undefined;
  /** A machine came in before the last one by join order: the next ordered read sorts (#inOrder). */
  #unordered = false;

  constructor(store: Store, log: Logger, cfg: LivenessConfig) {
    this.#store = store;
    this.#log = log;
    this.cfg = cfg;
  }

  async load(): Promise<void> {
    const now = Date.now();
    this.#returnBy = now + this.cfg.offlineAfterMs;
    const rows = await this.#store.machines.list();
    for (const row of rows) {
      // Fork machines run no deployment's replicas: placement need not wait for them.
      if (
        row.protocol === "channel" &&
        row.last_heartbeat_at !== null &&
        now - row.last_heartbeat_at < this.cfg.offlineAfterMs
      )
        this.#returning.add(row.id);
    }
    this.putMany(rows);
  }

  /** A machine as the store has it: nothing heard from it yet but its last recorded beat. */
  #entry(row: Machine, now: number): Entry {
    const live: Liveness = {
      connected: false,
      lastHeartbeatAt: row.last_heartbeat_at,
      usage: null,
      inference: null,
      runningJobs: 0,
    };
    return {
      row,
      hardware: JSON.parse(row.hardware) as Hardware,
      live,
      link: null,
      linkedAt: 0,
      status: machineStatus(row, live, now, this.cfg),
    };
  }

  start(): void {
    this.#sweepTimer = setInterval(() => void this.#sweepInSlices(), 1_000);
    // The stored time only matters after a restart (to tell UNHEALTHY from OFFLINE), so it need not
    // be fresher than a fraction of the offline grace; memory keeps the exact time.
    this.#flushTimer = setInterval(
      () => void this.flush(),
      Math.max(this.cfg.heartbeatIntervalMs, Math.min(15_000, this.cfg.offlineAfterMs / 4)),
    );
    this.#sweepTimer.unref();
    this.#flushTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweepTimer);
    clearInterval(this.#flushTimer);
    for (const e of this.#entries.values()) e.link?.close("gateway shutting down");
    await this.flush();
  }

  /** What routing checks of a machine (its pool, country and hardware). */
  facts(id: string): MachineFacts | undefined {
    const e = this.#entries.get(id);
    return e && factsOf(e);
  }

  get(id: string): Machine | undefined {
    return this.#entries.get(id)?.row;
  }

  /** Put a row (new or changed) in the registry, keeping its liveness. */
  put(row: Machine): void {
    this.putMany([row]);
  }

  /** Several rows at once (the machines that joined through a peer: thousands when replicas start). */
  putMany(rows: readonly Machine[]): void {
    const now = Date.now();
    for (const row of rows) {
      const e = this.#entries.get(row.id);
      if (e) {
        if (e.row.hardware !== row.hardware) e.hardware = JSON.parse(row.hardware) as Hardware;
        e.row = row;
        continue;
      }
      this.#entries.set(row.id, this.#entry(row, now));
      if (!this.#last || joinedBefore(this.#last, row)) this.#last = row;
      else this.#unordered = true;
    }
  }

  /**
   * The entries in join order, (joined_at, id) as the store lists them, so every replica pages alike.
   * A machine learnt late from a peer, or one whose join finished after a later one's, is moved to
   * its place here, when the order is next read: one sort for however many came (with replicas
   * starting together, nearly every join and every machine learnt from a peer comes out of order, and
   * a sort for each was most of a replica's CPU). One that joined last, as most do, stays appended.
   */
  #inOrder(): MapIterator<Entry> {
    if (this.#unordered) {
      const sorted = [...this.#entries.values()].sort((a, b) => (joinedBefore(a.row, b.row) ? -1 : 1));
      this.#entries.clear();
      for (const e of sorted) this.#entries.set(e.row.id, e);
      this.#unordered = false;
    }
    return this.#entries.values();
  }

  remove(id: string): void {
    const e = this.#entries.get(id);
    e?.link?.close("machine removed");
    this.#entries.delete(id);
    this.#dirty.delete(id);
    if (this.#returning.delete(id)) this.#wakeSettling();
  }

  /** Every machine known here, held or not (in no particular order). */
  ids(): string[] {
    return [...this.#entries.keys()];
  }

  isConnected(id: string): boolean {
    return this.#entries.get(id)?.live.connected ?? false;
  }

  /** A channel opened: a newer connection replaces an older one (the agent reconnected). */
  attach(id: string, link: AgentLink): void {
    const e = this.#entries.get(id);
    if (!e) return;
    if (e.link && e.link !== link) e.link.close("replaced by a newer connection", true);
    e.link = link;
    e.linkedAt = Date.now();
    e.live.connected = true;
  }

  detach(id: string, link: AgentLink): void {
    const e = this.#entries.get(id);
    if (!e || e.link !== link) return;
    e.link = null;
    e.live.connected = false;
    this.#transition(e, Date.now());
  }

  heartbeat(
    id: string,
    beat: {
      usage: Usage | null;
      runningJobs: number;
      inference?: InferenceReport | undefined;
      runners?: JobRunners | undefined;
    },
  ): MachineStatus | undefined {
    const e = this.#entries.get(id);
    if (!e) return undefined;
    const now = Date.now();
    this.heartbeats++;
    const returned = this.#returning.delete(id);
    e.live.lastHeartbeatAt = now;
    if (beat.usage) e.live.usage = beat.usage;
    if (beat.inference) e.live.inference = beat.inference;
    if (beat.runners) e.live.runners = beat.runners;
    e.live.runningJobs = beat.runningJobs;
    this.#dirty.set(id, now);
    this.#transition(e, now);
    // Its first beat says what it runs: requests waiting for it may go on.
    if (returned) this.#wakeSettling();
    return e.status;
  }

  /**
   * True while machines that were alive when this gateway started are still coming back (a restarted
   * gateway knows nothing of what they run until they beat): placing replicas now would load twice.
   * Bounded by the offline grace: a machine not back by then is taken for gone.
   */
  settling(now = Date.now()): boolean {
    return this.#returning.size > 0 && now < this.#returnBy;
  }

  /** Alive when this gateway started and not back yet (while settling). */
  returning(id: string): boolean {
    return this.#returning.has(id) && this.settling();
  }

  /**
   * Wait while settling until `done()` holds (checked as each returning machine is back), settling
   * ends (every machine back, or the offline grace over), or `until` passes, whichever comes first.
   */
  whileSettling(done: () => boolean, until: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!done() && this.settling() && Date.now() < until) return;
        clearTimeout(timer);
        this.#settlingWaiters.delete(check);
        resolve();
      };
      const timer = setTimeout(check, Math.max(0, Math.min(until, this.#returnBy) - Date.now()) + 1);
      this.#settlingWaiters.add(check);
      check();
    });
  }

  #wakeSettling(): void {
    for (const check of this.#settlingWaiters) check();
  }

  status(id: string): MachineStatus | undefined {
    const e = this.#entries.get(id);
    return e ? this.#status(e, Date.now()) : undefined;
  }

  /** A machine as users see it: from its channel here, else as the peer holding its channel sees it. */
  view(id: string): MachineView | undefined {
    const e = this.#entries.get(id);
    return e ? this.#shown(e, Date.now()) : undefined;
  }

  #status(e: Entry, now: number): MachineStatus {
    const held = e.live.connected ? undefined : this.#peerHeld.get(e.row.id);
    return held?.status ?? machineStatus(e.row, e.live, now, this.cfg);
  }

  #shown(e: Entry, now: number): MachineView {
    const view = toView(e, now, this.cfg);
    const held = e.live.connected ? undefined : this.#peerHeld.get(e.row.id);
    return held ? { ...view, ...held } : view;
  }

  /**
   * The machines connected here, as this replica sees them, for its peers (which have no channel to
   * them): what `view` shows there.
   */
  held(): Record<string, HeldMachine> {
    const now = Date.now();
    const out: Record<string, HeldMachine> = {};
    for (const e of this.#entries.values()) {
      if (!e.live.connected) continue;
      const { id, hardware: _, joined_at: __, ...held } = toView(e, now, this.cfg);
      out[id] = held;
    }
    return out;
  }

  /**
   * Per machine connected here, what its peers must learn at once when it changes: its status, flags,
   * runners and the models it serves, with `extra` (what a drain waits for) — not its last beat or
   * usage, which they may learn a few intervals late (peers/directory.ts).
   */
  heldSignatures(extra: (id: string) => string = () => ""): Map<string, string> {
    const now = Date.now();
    const out = new Map<string, string>();
    for (const e of this.#entries.values()) {
      if (!e.live.connected) continue;
      let sig = `${machineStatus(e.row, e.live, now, this.cfg)}|${e.row.name}|${e.row.pool}|${e.row.country}|${e.row.pue}|${e.row.cordoned_at}|${e.row.draining_at}|${e.live.runningJobs}|${runnersSignature(e.live.runners)}|${extra(e.row.id)}`;
      for (const m of e.live.inference?.models ?? [])
        sig += `|${m.name}:${m.state}:${m.engine}:${m.deployment === true}`;
      out.set(e.row.id, sig);
    }
    return out;
  }

  /**
   * What the live peers published of the machines they hold (replacing what they said before). Those
   * machines are not coming back here, so a restart need not wait for them. Returns the ids this
   * registry has no row for (joined through a peer): the caller reads them from the store.
   */
  setPeerHeld(held: Map<string, HeldMachine>): string[] {
    this.#peerHeld = held;
    const unknown: string[] = [];
    let returned = false;
    for (const id of held.keys()) {
      if (!this.#entries.has(id)) unknown.push(id);
      if (this.#returning.delete(id)) returned = true;
    }
    if (returned) this.#wakeSettling();
    return unknown;
  }

  /**
   * One page of machines in join order, the same on every replica (the map is kept in that order:
   * loaded so, new machines put in their place), so paging needs no sort. `after` is the last id of the
   * previous page. Ids only: a page's views are made as they are sent (`view`), a slice at a time,
   * since 500 of them at once held the event loop, and every heartbeat behind it (bench/heartbeats).
   */
  page(q: { pool?: string; status?: string; limit?: number; after?: string } = {}): {
    ids: string[];
    next: string | null;
  } {
    const limit = q.limit ?? DEFAULT_PAGE;
    const now = Date.now();
    const ids: string[] = [];
    let started = q.after === undefined;
    for (const e of this.#inOrder()) {
      if (!started) {
        started = e.row.id === q.after;
        continue;
      }
      if (q.pool !== undefined && e.row.pool !== q.pool) continue;
      if (q.status !== undefined && this.#status(e, now) !== q.status) continue;
      if (ids.length === limit) return { ids, next: ids.at(-1)! };
      ids.push(e.row.id);
    }
    return { ids, next: null };
  }

  /**
   * Machines that serve `model` ready now and accept new work: connected, READY or BUSY (not
   * cordoned, draining or unhealthy), per their last heartbeat.
   */
  serving(model: string, allow?: MachineFilter): ServingMachine[] {
    return this.#running(model, (s) => s === "READY" || s === "BUSY", allow);
  }

  /**
   * Where a request for `model` may go: the machines serving it, or, while none does, draining ones
   * that still run it ready (its replacement is on the way; a request need not wait for a cold start).
   * `allow` narrows them to those the scheduler lets take it (a deployment's own replicas).
   */
  routable(model: string, allow?: MachineFilter): ServingMachine[] {
    const serving = this.serving(model, allow);
    return serving.length > 0 ? serving : this.#running(model, (s) => s === "DRAINING", allow);
  }

  #running(
    model: string,
    accept: (status: MachineStatus) => boolean,
    allow: MachineFilter | undefined,
  ): ServingMachine[] {
    const now = Date.now();
    const out: ServingMachine[] = [];
    for (const e of this.#entries.values()) {
      if (!e.link?.request && !e.link?.http) continue;
      if (!accept(machineStatus(e.row, e.live, now, this.cfg))) continue;
      if (!e.live.inference?.models.some((m) => m.name === model && m.state === "ready")) continue;
      if (allow && !allow(factsOf(e))) continue;
      out.push({ id: e.row.id, link: e.link });
    }
    return out;
  }

  /** Connected machines being drained, with the models they still run. */
  draining(): { id: string; name: string; link: AgentLink; models: string[] }[] {
    const out: { id: string; name: string; link: AgentLink; models: string[] }[] = [];
    for (const e of this.#entries.values()) {
      if (e.row.draining_at === null || !e.link?.request || !e.live.inference) continue;
      const models = e.live.inference.models.map((m) => m.name);
      out.push({ id: e.row.id, name: e.row.name, link: e.link, models });
    }
    return out;
  }

  /**
   * Each machine that reports models, with its status, from this replica alone (as `views` has them),
   * without making every machine's view: the metrics read this at each scrape.
   */
  forEachServing(fn: (status: MachineStatus, models: readonly ServedModelView[]) => void): void {
    const now = Date.now();
    for (const e of this.#entries.values()) {
      const models = e.live.inference?.models;
      if (models?.length) fn(machineStatus(e.row, e.live, now, this.cfg), models);
    }
  }

  /** Every machine's view from this replica alone (for placement, which uses only channels here). */
  views(): MachineView[] {
    const now = Date.now();
    return [...this.#inOrder()].map((e) => toView(e, now, this.cfg));
  }

  link(id: string): AgentLink | undefined {
    return this.#entries.get(id)?.link ?? undefined;
  }

  /**
   * What an agent just said it serves (its answer to a start or stop), so routing need not wait for
   * the next heartbeat to see a replica come or go.
   */
  noteModels(id: string, models: ServedModelView[]): void {
    const e = this.#entries.get(id);
    if (!e) return;
    e.live.inference = e.live.inference
      ? { ...e.live.inference, models }
      : { engines: [], models, memory_free_bytes: 0, vram_free_bytes: null };
  }

  /**
   * Every model served ready by a machine connected here, with the machines serving it; with
   * `peers`, also by the machines whose channel a live peer holds (for listings: what users can call).
   */
  servedModels(opts: { peers?: boolean } = {}): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const add = (id: string, models: readonly ServedModelView[] | undefined) => {
      for (const m of models ?? []) {
        if (m.state !== "ready") continue;
        const ids = out.get(m.name);
        if (ids) ids.push(id);
        else out.set(m.name, [id]);
      }
    };
    for (const e of this.#entries.values()) if (e.live.connected) add(e.row.id, e.live.inference?.models);
    if (opts.peers) {
      for (const [id, held] of this.#peerHeld) {
        if (!this.#entries.get(id)?.live.connected) add(id, held.inference?.models);
      }
    }
    return out;
  }

  /** Whether a machine (held here or by a live peer) serves `model` that its owner started by hand. */
  servedByHand(model: string): boolean {
    const byHand = (models: readonly ServedModelView[] | undefined) =>
      (models ?? []).some((m) => m.name === model && m.state === "ready" && !m.deployment);
    for (const e of this.#entries.values())
      if (e.live.connected && byHand(e.live.inference?.models)) return true;
    for (const [id, held] of this.#peerHeld) {
      if (!this.#entries.get(id)?.live.connected && byHand(held.inference?.models)) return true;
    }
    return false;
  }

  /** Models that machines connected here run because a gateway started them for a deployment. */
  deploymentModels(): Set<string> {
    const out = new Set<string>();
    for (const e of this.#entries.values()) {
      if (!e.live.connected) continue;
      for (const m of e.live.inference?.models ?? []) if (m.deployment) out.add(m.name);
    }
    return out;
  }

  countByStatus(): Map<MachineStatus, number> {
    const now = Date.now();
    const counts = new Map<MachineStatus, number>();
    for (const e of this.#entries.values()) {
      const s = this.#status(e, now);
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * The sweep of every second, SWEEP_SLICE machines per turn of the event loop: ten thousand at once
   * held the loop a few milliseconds every second, and the heartbeats that came meanwhile waited
   * (bench/heartbeats). A machine joined or removed meanwhile is swept or not, as a Map's iterator goes.
   */
  async #sweepInSlices(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      let now = Date.now();
      let n = 0;
      for (const e of this.#entries.values()) {
        if (++n % SWEEP_SLICE === 0) {
          await new Promise((r) => setImmediate(r));
          now = Date.now();
        }
        this.#sweepOne(e, now);
      }
    } finally {
      this.#sweeping = false;
    }
  }

  #sweepOne(e: Entry, now: number): void {
    this.#transition(e, now);
    // A channel whose heartbeats stopped (a cut link, a hung agent) answers nothing, yet TCP may take
    // many minutes to say so: close it, so requests on it fail now and go to another machine.
    const silentFor = now - Math.max(e.live.lastHeartbeatAt ?? 0, e.linkedAt);
    if (e.link && silentFor >= silenceLimits(e.row, this.cfg).unhealthyAfterMs) {
      e.link.close(`no heartbeat for ${Math.round(silentFor / 1000)} s`);
    }
  }

  /** Write the heartbeat times gathered since the last flush. */
  flush(): Promise<void> {
    if (this.#dirty.size === 0) return this.#flushing;
    // Whole seconds: one UPDATE per second of beats instead of one per millisecond. Slices of 500
    // machines, each its own transaction with a turn of the event loop between them, so a synchronous
    // SQLite never holds the loop long enough to delay heartbeats.
    const batch: [string, number][] = [];
    for (const [id, at] of this.#dirty) batch.push([id, at - (at % 1000)]);
    this.#dirty.clear();
    this.#flushing = this.#flushing
      .then(async () => {
        for (let i = 0; i < batch.length; i += FLUSH_SLICE) {
          const slice = new Map(batch.slice(i, i + FLUSH_SLICE));
          await this.#store.transaction((tx) => tx.machines.recordHeartbeats(slice));
          await new Promise((r) => setImmediate(r));
        }
      })
      .catch((err: unknown) => {
        // Keep the times for the next flush; a store hiccup must not lose them.
        for (const [id, at] of batch) if (!this.#dirty.has(id)) this.#dirty.set(id, at);
        this.#log.warn({ err }, "could not record heartbeats; will retry");
      });
    return this.#flushing;
  }

  #transition(e: Entry, now: number): void {
    const next = this.#status(e, now);
    if (next === e.status) return;
    const level = next === "UNHEALTHY" || next === "OFFLINE" ? "warn" : "info";
    this.#log[level]({ machine_id: e.row.id, from: e.status, to: next }, `machine ${e.row.id} is ${next}`);
    e.status = next;
  }
}

function toView(e: Entry, now: number, cfg: LivenessConfig): MachineView {
  return {
    id: e.row.id,
    name: e.row.name,
    pool: e.row.pool,
    status: machineStatus(e.row, e.live, now, cfg),
    hostname: e.row.hostname,
    agent_version: e.row.agent_version,
    country: e.row.country,
    declared_country: e.row.declared_country,
    pue: e.row.pue,
    connection:
      e.row.protocol === "keepalive"
        ? e.live.lastHeartbeatAt
          ? "keepalive"
          : "none"
        : e.live.connected
          ? "channel"
          : "none",
    hardware: e.hardware,
    usage: e.live.usage,
    inference: e.live.inference,
    cordoned: e.row.cordoned_at !== null,
    draining: e.row.draining_at !== null,
    running_jobs: e.live.runningJobs,
    ...(e.live.runners ? { runners: e.live.runners } : {}),
    joined_at: new Date(e.row.joined_at).toISOString(),
    last_heartbeat_at:
      e.live.lastHeartbeatAt === null ? null : new Date(e.live.lastHeartbeatAt).toISOString(),
  };
}

function runnersSignature(r: JobRunners | undefined): string {
  return r ? `${r.default}:${r.bwrap}:${r.podman ? r.podman.rootless : "none"}:${r.cgroups}` : "-";
}

function factsOf(e: Entry): MachineFacts {
  return { id: e.row.id, pool: e.row.pool, country: e.row.country, hardware: e.hardware };
}

/** a joined before b: by join time, then id (the store's order). */
function joinedBefore(a: Machine, b: Machine): boolean {
  return a.joined_at < b.joined_at || (a.joined_at === b.joined_at && a.id < b.id);
}
