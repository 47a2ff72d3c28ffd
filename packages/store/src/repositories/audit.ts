import type { Selectable } from "kysely";
import type { AuditCheckpointTable, AuditEventTable, AuditPruneTable } from "../schema.ts";
import type { Executor } from "./executor.ts";
import { RowInserter } from "./raw-insert.ts";

export type AuditEventRow = Selectable<AuditEventTable>;
export type AuditCheckpoint = Selectable<AuditCheckpointTable>;
export type AuditPrune = Selectable<AuditPruneTable>;

export interface AuditQuery {
  since?: number | undefined;
  until?: number | undefined;
  actorId?: string | undefined;
  action?: string | undefined;
  resource?: string | undefined;
  /** Only this workspace's events (a workspace reading its own). */
  workspaceId?: string | undefined;
  /** Chain → last sequence number already read: only later events come back. */
  after?: Record<string, number> | undefined;
  limit: number;
}

/**
 * The audit log's rows. Events and checkpoints are only ever inserted (the database refuses
 * anything else); `prune` is retention's one way to remove events, through a recorded prune.
 */
/** Every column of an event, in the order its INSERT names them. */
const EVENT_COLUMNS: readonly (keyof AuditEventRow & string)[] = [
  "chain",
  "seq",
  "at",
  "actor_type",
  "actor_id",
  "workspace_id",
  "workspace",
  "action",
  "resource",
  "outcome",
  "request_id",
  "details",
  "prev_hash",
  "hash",
];

export class AuditRepository {
  readonly #db: Executor;
  readonly #insert: RowInserter<"audit_events", AuditEventRow>;
  constructor(db: Executor) {
    this.#db = db;
    this.#insert = new RowInserter(db, "audit_events", EVENT_COLUMNS, 256);
  }

  async append(row: AuditEventRow): Promise<void> {
    await this.#db.insertInto("audit_events").values(row).execute();
  }

  /** Events in order, in few statements (a batch of the request path's events). */
  appendMany(rows: readonly AuditEventRow[]): Promise<void> {
    return this.#insert.insertMany(rows);
  }

  /** The chain's last event (its head), or undefined for a chain with none left. */
  async head(chain: string): Promise<Pick<AuditEventRow, "seq" | "hash" | "at"> | undefined> {
    return this.#db
      .selectFrom("audit_events")
      .select(["seq", "hash", "at"])
      .where("chain", "=", chain)
      .orderBy("seq", "desc")
      .limit(1)
      .executeTakeFirst();
  }

  /** Every chain with events, checkpoints or prunes. */
  async chains(): Promise<string[]> {
    const rows = await this.#db
      .selectFrom("audit_events")
      .select("chain")
      .union(this.#db.selectFrom("audit_checkpoints").select("chain"))
      .union(this.#db.selectFrom("audit_prunes").select("chain"))
      .execute();
    return rows.map((r) => r.chain).sort();
  }

  async count(): Promise<number> {
    const row = await this.#db
      .selectFrom("audit_events")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** A chain's events from `fromSeq` on, in order (verify reads a chain in batches). */
  async range(chain: string, fromSeq: number, limit: number): Promise<AuditEventRow[]> {
    return this.#db
      .selectFrom("audit_events")
      .selectAll()
      .where("chain", "=", chain)
      .where("seq", ">=", fromSeq)
      .orderBy("seq")
      .limit(limit)
      .execute();
  }

  /**
   * Events matching the filters, chain by chain in sequence order: a cursor of each chain's last
   * sequence number then reads on without gaps, whatever the replicas' clocks said.
   */
  async list(q: AuditQuery): Promise<AuditEventRow[]> {
    let query = this.#db.selectFrom("audit_events").selectAll();
    if (q.since !== undefined) query = query.where("at", ">=", q.since);
    if (q.until !== undefined) query = query.where("at", "<", q.until);
    if (q.actorId !== undefined) query = query.where("actor_id", "=", q.actorId);
    if (q.action !== undefined) query = query.where("action", "=", q.action);
    if (q.resource !== undefined) query = query.where("resource", "=", q.resource);
    if (q.workspaceId !== undefined) query = query.where("workspace_id", "=", q.workspaceId);
    const after = Object.entries(q.after ?? {});
    if (after.length > 0) {
      query = query.where((eb) =>
        eb.or([
          eb(
            "chain",
            "not in",
            after.map(([c]) => c),
          ),
          ...after.map(([c, seq]) => eb.and([eb("chain", "=", c), eb("seq", ">", seq)])),
        ]),
      );
    }
    return query.orderBy("chain").orderBy("seq").limit(q.limit).execute();
  }

  async addCheckpoint(row: AuditCheckpoint): Promise<void> {
    await this.#db
      .insertInto("audit_checkpoints")
      .values(row)
      .onConflict((oc) => oc.columns(["chain", "seq"]).doNothing())
      .execute();
  }

  async checkpoints(opts: { since?: number; until?: number } = {}): Promise<AuditCheckpoint[]> {
    let query = this.#db.selectFrom("audit_checkpoints").selectAll();
    if (opts.since !== undefined) query = query.where("at", ">=", opts.since);
    if (opts.until !== undefined) query = query.where("at", "<", opts.until);
    return query.orderBy("chain").orderBy("seq").execute();
  }

  async prunes(): Promise<AuditPrune[]> {
    return this.#db.selectFrom("audit_prunes").selectAll().orderBy("chain").orderBy("through_seq").execute();
  }

  /** The chain's last sequence number written before `before`, where retention may cut. */
  async lastBefore(chain: string, before: number): Promise<Pick<AuditEventRow, "seq" | "hash"> | undefined> {
    return this.#db
      .selectFrom("audit_events")
      .select(["seq", "hash"])
      .where("chain", "=", chain)
      .where("at", "<", before)
      .orderBy("seq", "desc")
      .limit(1)
      .executeTakeFirst();
  }

  /**
   * Remove a chain's events up to `throughSeq`: records the prune (which the delete trigger checks)
   * and deletes. Run it in a transaction so the record and the removal land together.
   */
  async prune(chain: string, throughSeq: number, at: number): Promise<number> {
    await this.#db
      .insertInto("audit_prunes")
      .values({ chain, through_seq: throughSeq, at })
      .onConflict((oc) => oc.columns(["chain", "through_seq"]).doNothing())
      .execute();
    const res = await this.#db
      .deleteFrom("audit_events")
      .where("chain", "=", chain)
      .where("seq", "<=", throughSeq)
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
