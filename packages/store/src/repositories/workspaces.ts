import type { Selectable } from "kysely";
import type { WorkspaceTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type Workspace = Selectable<WorkspaceTable>;

export class WorkspaceRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async insert(row: Workspace): Promise<void> {
    await this.#db.insertInto("workspaces").values(row).execute();
  }

  /** Add a workspace; false when one has that name (or id) already, decided by the database. */
  async create(row: Workspace): Promise<boolean> {
    const res = await this.#db
      .insertInto("workspaces")
      .values(row)
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
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
