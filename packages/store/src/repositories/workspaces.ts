import type { Insertable, Selectable } from "kysely";
import type { WorkspaceTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type Workspace = Selectable<WorkspaceTable>;

export class WorkspaceRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async insert(row: Insertable<WorkspaceTable>): Promise<void> {
    await this.#db.insertInto("workspaces").values(row).execute();
  }

  /** Add a workspace; false when one has that name (or id) already, decided by the database. */
  async create(row: Insertable<WorkspaceTable>): Promise<boolean> {
    const res = await this.#db
      .insertInto("workspaces")
      .values(row)
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  /**
   * Remove a workspace with its deployments and API keys (run it in a transaction, so all or none
   * go); usage rows stay, to the usage retention. Returns what went, or undefined for no such id.
   */
  async removeWithContents(id: string): Promise<{ deployments: string[]; keys: string[] } | undefined> {
    const deployments = await this.#db
      .deleteFrom("deployments")
      .where("workspace_id", "=", id)
      .returning("name")
      .execute();
    const keys = await this.#db
      .deleteFrom("api_keys")
      .where("workspace_id", "=", id)
      .returning("id")
      .execute();
    const res = await this.#db.deleteFrom("workspaces").where("id", "=", id).executeTakeFirst();
    if (Number(res.numDeletedRows) !== 1) return undefined;
    return { deployments: deployments.map((d) => d.name), keys: keys.map((k) => k.id) };
  }

  /** Change the workspace's limits (null: none); the workspace as it is now, or undefined. */
  async setLimits(
    id: string,
    limits: Partial<Pick<Workspace, "rpm_limit" | "tpm_limit" | "max_jobs" | "gpu_hours_per_day">>,
  ): Promise<Workspace | undefined> {
    if (Object.keys(limits).length > 0)
      await this.#db.updateTable("workspaces").set(limits).where("id", "=", id).execute();
    return this.byId(id);
  }

  /** Change where the workspace's work may run; the workspace now, or undefined. */
  async setResidency(id: string, r: Pick<Workspace, "region" | "countries">): Promise<Workspace | undefined> {
    await this.#db.updateTable("workspaces").set(r).where("id", "=", id).execute();
    return this.byId(id);
  }

  /** Keep prompts and answers in its inference audit events from `since` on (null: stop); the workspace now. */
  async setAuditContent(id: string, since: number | null): Promise<Workspace | undefined> {
    await this.#db
      .updateTable("workspaces")
      .set({ audit_content_since: since })
      .where("id", "=", id)
      .execute();
    return this.byId(id);
  }

  async byName(name: string): Promise<Workspace | undefined> {
    return this.#db.selectFrom("workspaces").selectAll().where("name", "=", name).executeTakeFirst();
  }

  async byId(id: string): Promise<Workspace | undefined> {
    return this.#db.selectFrom("workspaces").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async list(): Promise<Workspace[]> {
    return this.#db.selectFrom("workspaces").selectAll().orderBy("name").execute();
  }
}
