import type { Selectable } from "kysely";
import type { ModelProvenanceTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type ModelProvenance = Selectable<ModelProvenanceTable>;

/** What machines said of the models they pulled for deployments (one row per workspace, model, machine, bytes). */
export class ModelProvenanceRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  /** Record a pull: a first one as it is, a later one of the same bytes refreshes the facts and its time. */
  async note(row: Omit<ModelProvenance, "first_pulled_at" | "last_pulled_at">, at: number): Promise<void> {
    const { workspace_id, model, machine_id, sha256, ...facts } = row;
    await this.#db
      .insertInto("model_provenance")
      .values({ ...row, first_pulled_at: at, last_pulled_at: at })
      .onConflict((oc) =>
        oc
          .columns(["workspace_id", "model", "machine_id", "sha256"])
          .doUpdateSet({ ...facts, last_pulled_at: at }),
      )
      .execute();
  }

  /** A workspace's rows, oldest pull first. */
  async list(workspaceId: string): Promise<ModelProvenance[]> {
    return this.#db
      .selectFrom("model_provenance")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .orderBy("first_pulled_at")
      .orderBy("model")
      .execute();
  }
}
