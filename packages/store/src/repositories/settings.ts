import type { Executor } from "./executor.ts";

export class SettingRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async get(key: string): Promise<string | undefined> {
    const row = await this.#db
      .selectFrom("settings")
      .select("value")
      .where("key", "=", key)
      .executeTakeFirst();
    return row?.value;
  }

  /** Insert only if absent; returns false when the key was already there. */
  async claim(key: string, value: string): Promise<boolean> {
    const res = await this.#db
      .insertInto("settings")
      .values({ key, value })
      .onConflict((oc) => oc.column("key").doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
  }
}
