import type { Insertable, Selectable } from "kysely";
import type { JoinTokenTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type JoinToken = Selectable<JoinTokenTable>;

export type ConsumeResult =
  | { ok: true; token: JoinToken }
  | { ok: false; reason: "invalid" | "expired" | "used_up" | "revoked"; token?: JoinToken };

export class JoinTokenRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async insert(row: Insertable<JoinTokenTable>): Promise<void> {
    await this.#db.insertInto("join_tokens").values(row).execute();
  }

  async get(id: string): Promise<JoinToken | undefined> {
    return this.#db.selectFrom("join_tokens").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async byHash(hash: string): Promise<JoinToken | undefined> {
    return this.#db.selectFrom("join_tokens").selectAll().where("token_hash", "=", hash).executeTakeFirst();
  }

  async list(): Promise<JoinToken[]> {
    return this.#db.selectFrom("join_tokens").selectAll().orderBy("created_at", "desc").execute();
  }

  async revoke(id: string, now: number): Promise<JoinToken | undefined> {
    await this.#db
      .updateTable("join_tokens")
      .set({ revoked_at: now })
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .execute();
    return this.get(id);
  }

  /**
   * Spend one use of a token. One conditional UPDATE decides, so two agents racing for the last use
   * cannot both win, in either dialect.
   */
  async consume(tokenHash: string, now: number): Promise<ConsumeResult> {
    const res = await this.#db
      .updateTable("join_tokens")
      .set((eb) => ({ uses_left: eb("uses_left", "-", 1) }))
      .where("token_hash", "=", tokenHash)
      .where("uses_left", ">", 0)
      .where("revoked_at", "is", null)
      .where("expires_at", ">", now)
      .executeTakeFirst();
    const token = await this.#db
      .selectFrom("join_tokens")
      .selectAll()
      .where("token_hash", "=", tokenHash)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1 && token) return { ok: true, token };
    if (!token) return { ok: false, reason: "invalid" };
    if (token.revoked_at !== null) return { ok: false, reason: "revoked", token };
    if (token.expires_at <= now) return { ok: false, reason: "expired", token };
    return { ok: false, reason: "used_up", token };
  }
}
