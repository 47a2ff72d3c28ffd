import type { Selectable } from "kysely";
import type { PoolTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type Pool = Selectable<PoolTable>;
export type PoolWithCount = Pool & { machines: number };

export class PoolRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async insert(row: Pool): Promise<void> {
    await this.#db.insertInto("pools").values(row).execute();
  }

  async get(name: string): Promise<Pool | undefined> {
    return this.#db.selectFrom("pools").selectAll().where("name", "=", name).executeTakeFirst();
  }

  async list(): Promise<PoolWithCount[]> {
    const rows = await this.#db
      .selectFrom("pools")
      .leftJoin("machines", "machines.pool", "pools.name")
      .select(["pools.name", "pools.description", "pools.created_at"])
      .select((eb) => eb.fn.count<number | string>("machines.id").as("machines"))
      .groupBy(["pools.name", "pools.description", "pools.created_at"])
      .orderBy("pools.name")
      .execute();
    return rows.map((r) => ({ ...r, machines: Number(r.machines) }));
  }
}
