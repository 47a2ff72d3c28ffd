import type { Selectable } from "kysely";
import type { GatewayReplicaTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type GatewayReplica = Selectable<GatewayReplicaTable>;

/** The gateway replicas sharing this store, each rewriting its own row while it lives. */
export class GatewayReplicaRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /** Write this replica's row (insert or replace). */
  async put(row: GatewayReplica): Promise<void> {
    const { id: _, ...rest } = row;
    await this.#db
      .insertInto("gateway_replicas")
      .values(row)
      .onConflict((oc) => oc.column("id").doUpdateSet(rest))
      .execute();
  }

  /** Replicas seen since `since` (ms since the epoch). */
  async seenSince(since: number): Promise<GatewayReplica[]> {
    return this.#db
      .selectFrom("gateway_replicas")
      .selectAll()
      .where("last_seen_at", ">=", since)
      .orderBy("id")
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
