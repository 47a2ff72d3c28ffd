import type { Selectable } from "kysely";
import type { ReplicaPlacementTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type ReplicaPlacement = Selectable<ReplicaPlacementTable>;

/** Where gateways placed deployments' replicas (one model name per machine). */
export class PlacementRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /** Record a placement; one placed before on the machine under the same name is replaced. */
  async put(row: ReplicaPlacement): Promise<void> {
    await this.#db
      .insertInto("replica_placements")
      .values(row)
      .onConflict((oc) =>
        oc.columns(["machine_id", "model"]).doUpdateSet({
          workspace_id: row.workspace_id,
          deployment_created_at: row.deployment_created_at,
          placed_at: row.placed_at,
          reason: row.reason,
        }),
      )
      .execute();
  }

  async list(machineId?: string): Promise<ReplicaPlacement[]> {
    let q = this.#db.selectFrom("replica_placements").selectAll();
    if (machineId !== undefined) q = q.where("machine_id", "=", machineId);
    return q.execute();
  }

  async remove(machineId: string, model: string): Promise<void> {
    await this.#db
      .deleteFrom("replica_placements")
      .where("machine_id", "=", machineId)
      .where("model", "=", model)
      .execute();
  }

  async removeMachine(machineId: string): Promise<void> {
    await this.#db.deleteFrom("replica_placements").where("machine_id", "=", machineId).execute();
  }
}
