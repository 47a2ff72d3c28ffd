import type { Selectable } from "kysely";
import type { GatewayReplicaTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type GatewayReplica = Selectable<GatewayReplicaTable>;
/** A replica's row without its machines (what is read every interval). */
export type GatewayReplicaSummary = Omit<GatewayReplica, "held">;
/** A write of a replica's row; without `held`, the machines last written stay as they are. */
export type GatewayReplicaWrite = Omit<GatewayReplica, "held" | "held_at"> & {
  held?: { json: string; at: number };
};

const SUMMARY_COLUMNS = [
  "id",
  "url",
  "started_at",
  "last_seen_at",
  "machines",
  "served",
  "spent",
  "held_at",
] as const satisfies readonly (keyof GatewayReplicaSummary)[];

/** The gateway replicas sharing this store, each rewriting its own row while it lives. */
export class GatewayReplicaRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /**
   * Write this replica's row (insert or update). A new row without `held` gets none (`held_at` 0),
   * which tells its writer to write them.
   */
  async put(write: GatewayReplicaWrite): Promise<void> {
    const { id: _, held, ...rest } = write;
    const machines = held ? { held: held.json, held_at: held.at } : {};
    await this.#db
      .insertInto("gateway_replicas")
      .values({ ...write, held: held?.json ?? "{}", held_at: held?.at ?? 0 })
      .onConflict((oc) => oc.column("id").doUpdateSet({ ...rest, ...machines }))
      .execute();
  }

  /** Replicas seen since `since` (ms since the epoch), without their machines. */
  async seenSince(since: number): Promise<GatewayReplicaSummary[]> {
    return this.#db
      .selectFrom("gateway_replicas")
      .select(SUMMARY_COLUMNS)
      .where("last_seen_at", ">=", since)
      .orderBy("id")
      .execute();
  }

  /** The machines of these replicas, as each last wrote them. */
  async held(ids: readonly string[]): Promise<Pick<GatewayReplica, "id" | "held" | "held_at">[]> {
    if (ids.length === 0) return [];
    return this.#db
      .selectFrom("gateway_replicas")
      .select(["id", "held", "held_at"])
      .where("id", "in", ids)
      .execute();
  }

  async remove(id: string): Promise<void> {
    await this.#db.deleteFrom("gateway_replicas").where("id", "=", id).execute();
  }

  /** Forget replicas not seen since `before` (crashed ones never remove their row). */
  async prune(before: number): Promise<void> {
    await this.#db.deleteFrom("gateway_replicas").where("last_seen_at", "<", before).execute();
  }
}
