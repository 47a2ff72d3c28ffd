import type { Insertable, Selectable, Updateable } from "kysely";
import type { MachineTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type Machine = Selectable<MachineTable>;

/** What replicas of a gateway must see at once when another replica sets it. */
export type MachineFlags = Pick<Machine, "id" | "cordoned_at" | "draining_at" | "country" | "pue">;
const FLAG_COLUMNS = ["cordoned_at", "draining_at", "country", "pue"] as const;

export class MachineRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async insert(row: Insertable<MachineTable>): Promise<void> {
    await this.#db.insertInto("machines").values(row).execute();
  }

  async get(id: string): Promise<Machine | undefined> {
    return this.#db.selectFrom("machines").selectAll().where("id", "=", id).executeTakeFirst();
  }

  /** The machines of these ids that exist, read 500 ids per query. */
  async getMany(ids: readonly string[]): Promise<Machine[]> {
    const out: Machine[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const some = ids.slice(i, i + 500);
      out.push(...(await this.#db.selectFrom("machines").selectAll().where("id", "in", some).execute()));
    }
    return out;
  }

  /**
   * Every machine's id, whether it is cordoned or draining, and its operator-set country and PUE, as
   * any gateway replica last set them.
   */
  async flags(): Promise<MachineFlags[]> {
    return this.#db
      .selectFrom("machines")
      .select(["id", ...FLAG_COLUMNS])
      .execute();
  }

  /** The flags of the machines whose flags were set at or after `since` (ms since the epoch). */
  async flagsChangedSince(since: number): Promise<MachineFlags[]> {
    return this.#db
      .selectFrom("machines")
      .select(["id", ...FLAG_COLUMNS])
      .where("flags_changed_at", ">=", since)
      .execute();
  }

  /** The ids of machines removed at or after `since` (ms since the epoch). */
  async removedSince(since: number): Promise<string[]> {
    const rows = await this.#db
      .selectFrom("machine_removals")
      .select("id")
      .where("removed_at", ">=", since)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Forget removals older than `before`: replicas have long read them. */
  async pruneRemovals(before: number): Promise<void> {
    await this.#db.deleteFrom("machine_removals").where("removed_at", "<", before).execute();
  }

  async byCredentialHash(hash: string): Promise<Machine | undefined> {
    return this.#db.selectFrom("machines").selectAll().where("credential_hash", "=", hash).executeTakeFirst();
  }

  async list(filter: { pool?: string } = {}): Promise<Machine[]> {
    let q = this.#db.selectFrom("machines").selectAll();
    if (filter.pool !== undefined) q = q.where("pool", "=", filter.pool);
    return q.orderBy("joined_at").orderBy("id").execute();
  }

  async update(id: string, patch: Updateable<MachineTable>): Promise<boolean> {
    const flagged = FLAG_COLUMNS.some((c) => c in patch);
    const res = await this.#db
      .updateTable("machines")
      .set(flagged ? { ...patch, flags_changed_at: Date.now() } : patch)
      .where("id", "=", id)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  /** Remove a machine, and with it the replicas gateways placed there (a machine joining again starts bare). */
  async remove(id: string): Promise<boolean> {
    await this.#db.deleteFrom("replica_placements").where("machine_id", "=", id).execute();
    const res = await this.#db.deleteFrom("machines").where("id", "=", id).executeTakeFirst();
    if (Number(res.numDeletedRows) !== 1) return false;
    await this.#db.insertInto("machine_removals").values({ id, removed_at: Date.now() }).execute();
    return true;
  }

  /**
   * Record many heartbeat times: one UPDATE per distinct time and per 500 ids. Callers round the
   * times (to the second) so a batch holds few distinct values.
   */
  async recordHeartbeats(beats: ReadonlyMap<string, number>): Promise<void> {
    const byTime = new Map<number, string[]>();
    for (const [id, at] of beats) {
      const ids = byTime.get(at);
      if (ids) ids.push(id);
      else byTime.set(at, [id]);
    }
    for (const [at, ids] of byTime) {
      for (let i = 0; i < ids.length; i += 500) {
        await this.#db
          .updateTable("machines")
          .set({ last_heartbeat_at: at })
          .where("id", "in", ids.slice(i, i + 500))
          .execute();
      }
    }
  }
}
