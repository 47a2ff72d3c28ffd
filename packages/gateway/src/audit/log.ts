import { createHmac, sign } from "node:crypto";
import type { Logger } from "@beta9/http";
import type { AuditEventRow, Store } from "@beta9/store";
import type { Counter } from "prom-client";
import type { Audit, AuditInput } from "./audit.ts";
import { checkpointMessage, eventHash, GENESIS } from "./chain.ts";
import type { AuditKeys } from "./keys.ts";

export interface AuditLogOptions {
  /** A signed checkpoint after this many events of the chain… */
  checkpointEvery: number;
  /** …or this long after the last one, whichever comes first (when events came since). */
  checkpointEveryMs: number;
  /** How long events are kept (`--audit-retention`); 0 keeps them forever. */
  retentionMs: number;
  /** How many enqueued events are written together. */
  batch: number;
  /** Counts enqueued events that could not be written (fail open). */
  dropped?: Counter | undefined;
}

export const DEFAULT_AUDIT_OPTIONS: AuditLogOptions = {
  checkpointEvery: 1_000,
  checkpointEveryMs: 3_600_000,
  retentionMs: 180 * 86_400_000,
  batch: 200,
};

const FLUSH_MS = 200;
const RETENTION_EVERY_MS = 3_600_000;

/**
 * The gateway's audit log: this replica's hash chain in the store. Writes are serialised in process
 * (each event names its predecessor's hash), never across replicas: each replica has its own chain.
 * Sequence numbers, not times, order a chain, so a clock that jumps back breaks nothing.
 */
export class AuditLog implements Audit {
  readonly #store: Store;
  readonly #keys: AuditKeys;
  readonly #log: Logger;
  readonly #opts: AuditLogOptions;
  readonly #names = new Map<string, string>();
  #head: { seq: number; hash: string } = { seq: 0, hash: GENESIS };
  #lastCheckpoint = { seq: 0, at: 0 };
  /** The tail of the write queue: every write waits for the one before it. */
  #tail: Promise<unknown> = Promise.resolve();
  #pending: AuditInput[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  #timers: NodeJS.Timeout[] = [];

  private constructor(store: Store, keys: AuditKeys, log: Logger, opts: AuditLogOptions) {
    this.#store = store;
    this.#keys = keys;
    this.#log = log;
    this.#opts = opts;
  }

  static async open(
    store: Store,
    keys: AuditKeys,
    log: Logger,
    opts: Partial<AuditLogOptions> = {},
  ): Promise<AuditLog> {
    const audit = new AuditLog(store, keys, log, { ...DEFAULT_AUDIT_OPTIONS, ...opts });
    const head = await store.audit.head(keys.chain);
    if (head) audit.#head = { seq: Number(head.seq), hash: head.hash };
    else {
      // Every event of the chain pruned: it goes on after the last prune's checkpoint.
      const cps = (await store.audit.checkpoints()).filter((c) => c.chain === keys.chain);
      const last = cps.at(-1);
      if (last) audit.#head = { seq: Number(last.seq), hash: last.hash };
    }
    const cps = (await store.audit.checkpoints()).filter((c) => c.chain === keys.chain);
    const lastCp = cps.at(-1);
    audit.#lastCheckpoint = lastCp
      ? { seq: Number(lastCp.seq), at: Number(lastCp.at) }
      : { seq: 0, at: Date.now() };
    return audit;
  }

  get chain(): string {
    return this.#keys.chain;
  }

  get publicKey(): string {
    return this.#keys.publicKey;
  }

  start(): void {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(
        () => void fn().catch((err: unknown) => this.#log.error({ err }, "audit upkeep failed")),
        ms,
      );
      t.unref();
      this.#timers.push(t);
    };
    every(Math.min(this.#opts.checkpointEveryMs, 60_000), async () => {
      if (Date.now() - this.#lastCheckpoint.at >= this.#opts.checkpointEveryMs) await this.checkpoint();
    });
    if (this.#opts.retentionMs > 0) {
      void this.prune().catch((err: unknown) => this.#log.error({ err }, "audit retention failed"));
      every(RETENTION_EVERY_MS, () => this.prune());
    }
  }

  async close(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    clearTimeout(this.#flushTimer);
    await this.#flush();
    await this.#tail.catch(() => {});
  }

  /** A workspace's name, known to the caller (one about to be removed is still named in its event). */
  nameWorkspace(id: string, name: string): void {
    this.#names.set(id, name);
  }

  /** Fails closed: resolves once the event is in the store, throws when it could not be written. */
  record(e: AuditInput): Promise<void> {
    return this.#serial(() => this.#write([e]));
  }

  /** Fails open: batched; a batch that cannot be written is counted and logged, never thrown. */
  enqueue(e: AuditInput): void {
    // A batch is written up to FLUSH_MS later: each event keeps the time it happened.
    this.#pending.push(e.at === undefined ? { ...e, at: Date.now() } : e);
    if (this.#pending.length >= this.#opts.batch) void this.#flush();
    else if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => void this.#flush(), FLUSH_MS);
      this.#flushTimer.unref();
    }
  }

  hmac(secret: string): string {
    return `hmac-sha256:${createHmac("sha256", this.#keys.hmacKey).update(secret).digest("hex")}`;
  }

  /**
   * Whether an event could be written now: an insert in a transaction that is rolled back. A
   * management route asks before it changes anything, so a log that cannot take its event (a full
   * disk, a refused write) refuses the change instead of letting it go unrecorded.
   */
  async writable(): Promise<void> {
    const probe = Symbol("probe");
    try {
      await this.#store.transaction(async (tx) => {
        await tx.audit.append({
          ...(await this.#row(
            {
              actor: { type: "system", id: null },
              workspaceId: null,
              action: "audit.probe",
              resource: null,
              outcome: "ok",
              requestId: null,
            },
            { seq: -1, hash: GENESIS },
            null,
          )),
          chain: `${this.#keys.chain}#probe`,
        });
        throw probe;
      });
    } catch (err) {
      if (err !== probe) throw err;
    }
  }

  /** Sign the chain's head now (when events came since the last checkpoint). */
  checkpoint(): Promise<void> {
    return this.#serial(() => this.#checkpoint());
  }

  /** Remove events older than the retention, after a signed checkpoint at the cut. */
  prune(now = Date.now()): Promise<number> {
    if (this.#opts.retentionMs <= 0) return Promise.resolve(0);
    return this.#serial(async () => {
      const cut = await this.#store.audit.lastBefore(this.#keys.chain, now - this.#opts.retentionMs);
      if (!cut) return 0;
      const seq = Number(cut.seq);
      await this.#sign({ seq, hash: cut.hash }, now);
      const removed = await this.#store.transaction((tx) => tx.audit.prune(this.#keys.chain, seq, now));
      if (removed > 0)
        this.#log.info(
          { chain: this.#keys.chain, through_seq: seq, removed },
          "audit events past the retention removed",
        );
      return removed;
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  async #flush(): Promise<void> {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const batch = this.#pending.splice(0);
    if (batch.length === 0) return;
    await this.#serial(() => this.#write(batch)).catch((err: unknown) => {
      this.#opts.dropped?.inc(batch.length);
      this.#log.error(
        { err, dropped: batch.length, actions: [...new Set(batch.map((e) => e.action))] },
        "AUDIT EVENTS LOST: could not write a batch of inference/job audit events; check the database (disk space, permissions)",
      );
    });
  }

  async #write(events: AuditInput[]): Promise<void> {
    let head = this.#head;
    const rows: AuditEventRow[] = [];
    for (const e of events) {
      const row = await this.#row(e, head, await this.#workspaceName(e.workspaceId));
      rows.push(row);
      head = { seq: row.seq, hash: row.hash };
    }
    await this.#store.transaction(async (tx) => {
      await tx.audit.appendMany(rows);
    });
    this.#head = head;
    if (head.seq - this.#lastCheckpoint.seq >= this.#opts.checkpointEvery) await this.#checkpoint();
  }

  async #row(
    e: AuditInput,
    prev: { seq: number; hash: string },
    workspace: string | null,
  ): Promise<AuditEventRow> {
    const at = e.at ?? Date.now();
    const view = {
      chain: this.#keys.chain,
      seq: prev.seq + 1,
      at: new Date(at).toISOString(),
      actor: e.actor,
      workspace,
      action: e.action,
      resource: e.resource,
      outcome: e.outcome,
      request_id: e.requestId,
      details: e.details ?? {},
      prev_hash: prev.hash,
    };
    return {
      chain: view.chain,
      seq: view.seq,
      at,
      actor_type: e.actor.type,
      actor_id: e.actor.id,
      workspace_id: e.workspaceId,
      workspace,
      action: e.action,
      resource: e.resource,
      outcome: e.outcome,
      request_id: e.requestId,
      details: JSON.stringify(view.details),
      prev_hash: prev.hash,
      hash: await eventHash(view),
    };
  }

  async #checkpoint(): Promise<void> {
    if (this.#head.seq <= this.#lastCheckpoint.seq) return;
    await this.#sign(this.#head, Date.now());
  }

  async #sign(head: { seq: number; hash: string }, at: number): Promise<void> {
    const c = { chain: this.#keys.chain, seq: head.seq, hash: head.hash, at };
    await this.#store.audit.addCheckpoint({
      ...c,
      signature: sign(null, checkpointMessage(c), this.#keys.signing).toString("base64"),
      key_id: this.#keys.keyId,
      public_key: this.#keys.publicKey,
    });
    if (head.seq >= this.#lastCheckpoint.seq) this.#lastCheckpoint = { seq: head.seq, at };
  }

  async #workspaceName(id: string | null): Promise<string | null> {
    if (id === null) return null;
    const known = this.#names.get(id);
    if (known) return known;
    const ws = await this.#store.workspaces.byId(id);
    // A workspace already removed is named by its id: the event is kept either way.
    const name = ws?.name ?? id;
    if (ws) this.#names.set(id, name);
    return name;
  }
}
