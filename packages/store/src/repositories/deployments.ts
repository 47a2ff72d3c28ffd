import { canonicalModelName } from "@beta9/protocol";
import type { Selectable } from "kysely";
import type { DeploymentTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type Deployment = Selectable<DeploymentTable>;

/**
 * Names are stored and looked up in their canonical form (lowercase), so "Victim" and "victim" are one
 * deployment: the unique index then holds across case, as the agents' model stores do.
 */
export class DeploymentRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /**
   * Add a deployment; false when the name is deployed already, in this workspace or another (a name
   * is one model in the pool). The database decides, so two racing creates cannot both win, in
   * either dialect.
   */
  async insert(row: Deployment): Promise<boolean> {
    const res = await this.#db
      .insertInto("deployments")
      .values({ ...row, name: canonicalModelName(row.name) })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async get(workspaceId: string, name: string): Promise<Deployment | undefined> {
    return this.#db
      .selectFrom("deployments")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("name", "=", canonicalModelName(name))
      .executeTakeFirst();
  }

  /** One workspace's deployments by name, or every workspace's when none is given. */
  async list(workspaceId?: string): Promise<Deployment[]> {
    let q = this.#db.selectFrom("deployments").selectAll();
    if (workspaceId !== undefined) q = q.where("workspace_id", "=", workspaceId);
    return q.orderBy("workspace_id").orderBy("name").execute();
  }

  /** Every deployment of every workspace: what the scheduler keeps servable. */
  async listAll(): Promise<Deployment[]> {
    return this.list();
  }

  /** Every workspace's deployments with one of these names (which workspaces may call a model by it). */
  async named(names: readonly string[]): Promise<Deployment[]> {
    if (names.length === 0) return [];
    return this.#db
      .selectFrom("deployments")
      .selectAll()
      .where("name", "in", names.map(canonicalModelName))
      .orderBy("workspace_id")
      .orderBy("name")
      .execute();
  }

  async remove(workspaceId: string, name: string): Promise<boolean> {
    const res = await this.#db
      .deleteFrom("deployments")
      .where("workspace_id", "=", workspaceId)
      .where("name", "=", canonicalModelName(name))
      .executeTakeFirst();
    return Number(res.numDeletedRows) === 1;
  }
}
