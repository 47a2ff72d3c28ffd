import { randomBytes } from "node:crypto";
import type { Logger } from "@beta9/http";
import type { MachineView } from "@beta9/protocol";
import type { GatewayReplicaSummary, MachineFlags, Store } from "@beta9/store";
import type { Spent } from "../limits/key-limits.ts";
import type { HeldMachine, MachineRegistry } from "../machines/registry.ts";

/** How often a replica rewrites its row (and reads its peers'). */
const DEFAULT_INTERVAL_MS = 2_000;
/**
 * Its machines are rewritten when one changed in what peers must know at once (status, flags, what it
 * serves: `heldSignatures`), else every this many intervals (their last beat and usage).
 */
const HELD_EVERY_INTERVALS = 5;
/**
 * Flags set through a peer (cordon, drain, country, PUE) and machines removed through one are read
 * as what changed since the last read, with this much overlap: a change stamped by a peer's clock a
 * little behind ours, or committed while we read, is still seen. Re-applying one is harmless.
 */
const FLAGS_OVERLAP_MS = 10_000;
/** Every machine's flags are read in full this often all the same: a backstop for clocks further apart. */
const FLAGS_FULL_EVERY_MS = 60_000;
/** Removals are kept in the store this long: far more than any replica takes to read them. */
const REMOVALS_KEPT_MS = 3_600_000;

/** What the keys spent, published to the peers and charged from theirs (KeyLimits). */
export interface SharedLimits {
  spending(): Record<string, Spent>;
  chargeElsewhere(keyId: string, spent: Spent): void;
}

/** What this replica knows of another one on the same store. */
export interface Peer {
  id: string;
  url: string;
  /** How long the peer has been up, by its own clock (no comparison across hosts' clocks). */
  upMs: number;
  /** Machines whose agent channel the peer holds. */
  machines: number;
  /** Model → machines on the peer serving it ready. */
  served: Record<string, number>;
  /** The machines whose channel it holds, as it sees them. */
  held: Record<string, HeldMachine>;
  /** API key id → what the key spent there, in total since its first recent use. */
  spent: Record<string, Spent>;
}

/**
 * The gateway replicas sharing one PostgreSQL: this one writes its own row every couple of seconds
 * (where peers reach it, which machines it holds and how it sees them, which models they serve),
 * reads the others' (so machines held there are shown here as there), and removes its row on a clean
 * stop. A replica that stops writing (killed) drops out of every peer's
 * list after a few intervals; a request forwarded to it meanwhile fails at once and is served here.
 */
export class PeerDirectory {
  readonly id = `gw_${randomBytes(6).toString("hex")}`;
  readonly #store: Store;
  readonly #registry: MachineRegistry;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #startedAt = Date.now();
  #url = "";
  #peers: Peer[] = [];
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> = Promise.resolve();
  /** Peers that refused a connection: skipped until their row is written again. */
  readonly #unreachable = new Map<string, number>();
  readonly #limits: SharedLimits | undefined;
  /** Per peer, each key's spending as last charged here: the next read charges only what is new. */
  readonly #charged = new Map<string, Record<string, Spent>>();
  #work: ((machineId: string) => Pick<MachineView, "in_flight" | "drain_waiting_for">) | undefined;
  /** When this replica last wrote its machines (0: write them next time), and what they were then. */
  #heldAt = 0;
  #heldSignatures = new Map<string, string>();
  /** When machines' flags were last read (0: never), and last read in full. */
  #flagsReadAt = 0;
  #flagsFullAt = 0;
  /** Each peer's machines as last read, and when that peer wrote them. */
  readonly #peerHeld = new Map<string, { at: number; held: Record<string, HeldMachine> }>();

  constructor(
    store: Store,
    registry: MachineRegistry,
    log: Logger,
    opts: { intervalMs?: number; limits?: SharedLimits } = {},
  ) {
    this.#store = store;
    this.#registry = registry;
    this.#log = log;
    this.#intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.#limits = opts.limits;
  }

  /** Announce this replica at `url` (where peers reach it) and keep the list of peers fresh. */
  async start(url: string): Promise<void> {
    this.#url = url;
    await this.#refresh();
    this.#log.info({ replica: this.id, url, peers: this.#peers.length }, "gateway replica registered");
    this.#timer = setInterval(() => {
      this.#tick = this.#tick.then(() => this.#refresh());
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (!this.#timer) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#tick;
    await this.#store.gatewayReplicas.remove(this.id).catch(() => {});
  }

  /** What a held machine is doing here (answers in flight, what its drain waits for), published with it. */
  showWork(work: (machineId: string) => Pick<MachineView, "in_flight" | "drain_waiting_for">): void {
    this.#work = work;
  }

  /** Other live replicas (none on a replica alone, or on SQLite). */
  get peers(): readonly Peer[] {
    return this.#peers;
  }

  /** The peer whose agents serve `model` ready (the one with the most such machines), if any. */
  serving(model: string): Peer | undefined {
    let best: Peer | undefined;
    for (const p of this.#usable()) if ((p.served[model] ?? 0) > (best?.served[model] ?? 0)) best = p;
    return best;
  }

  /** The peer holding the most machines: where a model nobody serves can be placed. */
  placing(): Peer | undefined {
    let best: Peer | undefined;
    for (const p of this.#usable()) if (p.machines > (best?.machines ?? 0)) best = p;
    return best;
  }

  /** A forward to `peer` could not connect: leave it out until it writes its row again. */
  unreachable(peer: Peer): void {
    this.#unreachable.set(peer.id, Date.now());
  }

  /**
   * Machines held by the live peers are shown as they see them (a machine held by two, its agent
   * moving, as the most recent beat says). Machines that joined through a peer are read from the store.
   * Changes made through a peer to machines held here (cordon, drain, uncordon) are read back too,
   * so this replica stops sending them work, and a machine removed through a peer is dropped here
   * (its channel, if held here, closed).
   */
  async #showPeerMachines(mine: string[], peersMoved: boolean): Promise<void> {
    if (peersMoved) {
      const byId = new Map<string, HeldMachine>();
      for (const p of this.#peers) {
        for (const [id, m] of Object.entries(p.held)) {
          const seen = byId.get(id);
          if (!seen || (m.last_heartbeat_at ?? "") > (seen.last_heartbeat_at ?? "")) byId.set(id, m);
        }
      }
      // Machines that joined through a peer: thousands at once when a pool's replicas start together.
      this.#registry.putMany(await this.#store.machines.getMany(this.#registry.setPeerHeld(byId)));
    }
    // Also with no live peer: one that removed a machine and then stopped leaves it to this one.
    const readAt = Date.now();
    const full = this.#flagsReadAt === 0 || readAt - this.#flagsFullAt >= FLAGS_FULL_EVERY_MS;
    if (full) await this.#readAllFlags(mine);
    else await this.#readChangedFlags(mine, this.#flagsReadAt - FLAGS_OVERLAP_MS);
    this.#flagsReadAt = readAt;
    if (full) {
      this.#flagsFullAt = readAt;
      await this.#store.machines.pruneRemovals(readAt - REMOVALS_KEPT_MS);
    }
  }

  /** Every machine's flags, and every machine this replica shows that the store no longer has. */
  async #readAllFlags(mine: string[]): Promise<void> {
    // Known before the read: a machine that joins here while it runs is not taken for a removed one.
    const known = this.#registry.ids();
    const stored = await this.#store.machines.flags();
    this.#applyFlags(stored, mine);
    const inStore = new Set(stored.map((f) => f.id));
    for (const id of known) {
      // Every replica writes a machine to the store before it shows it, so this one was removed.
      if (inStore.has(id) || !this.#registry.get(id)) continue;
      this.#dropRemoved(id);
    }
  }

  /** The flags set and the machines removed since `since`: at 30,000 machines, a few rows, not all. */
  async #readChangedFlags(mine: string[], since: number): Promise<void> {
    this.#applyFlags(await this.#store.machines.flagsChangedSince(since), mine);
    const removed = (await this.#store.machines.removedSince(since)).filter((id) => this.#registry.get(id));
    if (removed.length === 0) return;
    // One removed and joined again since stays.
    const back = new Set((await this.#store.machines.getMany(removed)).map((m) => m.id));
    for (const id of removed) if (!back.has(id)) this.#dropRemoved(id);
  }

  /** Flags as the store has them, for the machines held here (peers publish their own machines'). */
  #applyFlags(stored: readonly MachineFlags[], mine: string[]): void {
    if (stored.length === 0) return;
    const held = new Set(mine);
    for (const f of stored) {
      const row = held.has(f.id) ? this.#registry.get(f.id) : undefined;
      // The country too: this replica routes the machine's requests, and residency reads it per request.
      if (
        row &&
        (row.cordoned_at !== f.cordoned_at ||
          row.draining_at !== f.draining_at ||
          row.country !== f.country ||
          row.pue !== f.pue)
      )
        this.#registry.put({ ...row, ...f });
    }
  }

  #dropRemoved(id: string): void {
    this.#registry.remove(id);
    this.#log.info({ machine_id: id }, "machine removed through another gateway replica");
  }

  /**
   * Charge here what keys spent at each peer since the last read. A peer seen for the first time
   * long after it started gives a baseline only: its totals go back further than a bucket's minute.
   */
  #chargePeerSpending(): void {
    if (!this.#limits) return;
    const live = new Set<string>();
    for (const p of this.#peers) {
      live.add(p.id);
      const before = this.#charged.get(p.id);
      this.#charged.set(p.id, p.spent);
      if (!before && p.upMs > 60_000) continue;
      for (const [keyId, spent] of Object.entries(p.spent)) {
        if (!Array.isArray(spent)) continue;
        const [requests, tokens] = spent;
        const [r0, t0] = before?.[keyId] ?? [0, 0];
        // Totals that went down started again from zero (the key was idle there a while).
        const fresh = requests < r0 || tokens < t0;
        this.#limits.chargeElsewhere(keyId, fresh ? [requests, tokens] : [requests - r0, tokens - t0]);
      }
    }
    for (const id of this.#charged.keys()) if (!live.has(id)) this.#charged.delete(id);
  }

  *#usable(): Generator<Peer> {
    for (const p of this.#peers) if (!this.#unreachable.has(p.id)) yield p;
  }

  async #refresh(): Promise<void> {
    const now = Date.now();
    const served: Record<string, number> = {};
    for (const [model, ids] of this.#registry.servedModels()) served[model] = ids.length;
    const signatures = this.#registry.heldSignatures((id) => {
      // A drain's progress is watched (b9 machine show): published as it moves. Otherwise the count
      // of answers in flight changes with every request: whether there are any is published at once,
      // the count with the rest.
      const w = this.#work?.(id);
      if (!w) return "";
      return w.drain_waiting_for === undefined
        ? String((w.in_flight ?? 0) > 0)
        : `${w.in_flight}|${w.drain_waiting_for}`;
    });
    const writeHeld =
      now - this.#heldAt >= HELD_EVERY_INTERVALS * this.#intervalMs ||
      !sameSignatures(signatures, this.#heldSignatures);
    let held: Record<string, HeldMachine> | undefined;
    if (writeHeld) {
      held = this.#registry.held();
      if (this.#work) for (const [id, m] of Object.entries(held)) Object.assign(m, this.#work(id));
    }
    try {
      await this.#store.gatewayReplicas.put({
        id: this.id,
        url: this.#url,
        started_at: this.#startedAt,
        last_seen_at: now,
        machines: signatures.size,
        served: JSON.stringify(served),
        spent: JSON.stringify(this.#limits?.spending() ?? {}),
        ...(held ? { held: { json: JSON.stringify(held), at: now } } : {}),
      });
      if (held) {
        this.#heldAt = now;
        this.#heldSignatures = signatures;
      }
      const staleBefore = now - 3 * this.#intervalMs;
      const rows = await this.#store.gatewayReplicas.seenSince(staleBefore);
      // A row a peer pruned while this replica stalled comes back without machines: write them again.
      if (rows.find((r) => r.id === this.id)?.held_at !== this.#heldAt) this.#heldAt = 0;
      const peerRows = rows.filter((r) => r.id !== this.id);
      const peersMoved = await this.#readPeerHeld(peerRows);
      this.#peers = peerRows.map((r) => toPeer(r, this.#peerHeld.get(r.id)?.held ?? {}));
      this.#chargePeerSpending();
      await this.#showPeerMachines([...signatures.keys()], peersMoved);
      for (const r of rows) {
        const refusedAt = this.#unreachable.get(r.id);
        if (refusedAt !== undefined && r.last_seen_at > refusedAt) this.#unreachable.delete(r.id);
      }
      // Rows of crashed replicas are never removed by their owner.
      if (Math.random() < 0.1) await this.#store.gatewayReplicas.prune(now - 60 * this.#intervalMs);
    } catch (err) {
      // The peers' machines may have been read and not shown: read them again next time.
      this.#peerHeld.clear();
      this.#log.warn({ err }, "could not refresh the gateway replicas; will retry");
    }
  }

  /**
   * Read the machines of the peers that rewrote them since the last read (and forget those of peers
   * gone). True when what the peers hold may have changed.
   */
  async #readPeerHeld(rows: readonly GatewayReplicaSummary[]): Promise<boolean> {
    const live = new Set(rows.map((r) => r.id));
    let moved = false;
    for (const id of this.#peerHeld.keys()) {
      if (live.has(id)) continue;
      this.#peerHeld.delete(id);
      moved = true;
    }
    const stale = rows.filter((r) => this.#peerHeld.get(r.id)?.at !== r.held_at).map((r) => r.id);
    for (const r of await this.#store.gatewayReplicas.held(stale)) {
      this.#peerHeld.set(r.id, { at: r.held_at, held: parsed<Record<string, HeldMachine>>(r.held) });
      moved = true;
    }
    return moved;
  }
}

function sameSignatures(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, sig] of a) if (b.get(id) !== sig) return false;
  return true;
}

function toPeer(r: GatewayReplicaSummary, held: Record<string, HeldMachine>): Peer {
  return {
    id: r.id,
    url: r.url,
    upMs: r.last_seen_at - r.started_at,
    machines: r.machines,
    served: parsed<Record<string, number>>(r.served),
    held,
    spent: parsed<Record<string, Spent>>(r.spent),
  };
}

function parsed<T extends object>(json: string): T {
  try {
    return JSON.parse(json) as T;
  } catch {
    return {} as T;
  }
}
