import type { Insertable, Selectable } from "kysely";
import type { ApiKeyTable } from "../schema.ts";
import type { Executor } from "./executor.ts";

export type ApiKey = Selectable<ApiKeyTable>;

export class ApiKeyRepository {
  readonly #db: Executor;
  constructor(db: Executor) {
    this.#db = db;
  }

  async insert(row: Insertable<ApiKeyTable>): Promise<void> {
    await this.#db.insertInto("api_keys").values(row).execute();
  }

  async get(id: string): Promise<ApiKey | undefined> {
    return this.#db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
  }

  async byHash(hash: string): Promise<ApiKey | undefined> {
    return this.#db.selectFrom("api_keys").selectAll().where("key_hash", "=", hash).executeTakeFirst();
  }

  /** Keys only: sessions are people's credentials of the moment, not keys anyone manages. */
  async list(filter: { workspaceId?: string } = {}): Promise<ApiKey[]> {
    let q = this.#db.selectFrom("api_keys").selectAll().where("kind", "=", "key");
    if (filter.workspaceId !== undefined) q = q.where("workspace_id", "=", filter.workspaceId);
    return q.orderBy("created_at").orderBy("id").execute();
  }

  /** Revokes the key and the sessions opened with it. */
  async revoke(id: string, now: number): Promise<ApiKey | undefined> {
    await this.#db
      .updateTable("api_keys")
      .set({ revoked_at: now })
      .where((eb) => eb.or([eb("id", "=", id), eb("parent_id", "=", id)]))
      .where("revoked_at", "is", null)
      .execute();
    return this.get(id);
  }

  /** The live session whose refresh token hashes to `hash` (not revoked; its refresh not expired). */
  async sessionByRefresh(hash: string, now: number): Promise<ApiKey | undefined> {
    return this.#db
      .selectFrom("api_keys")
      .selectAll()
      .where("kind", "=", "session")
      .where("refresh_hash", "=", hash)
      .where("revoked_at", "is", null)
      .where("refresh_expires_at", ">", now)
      .executeTakeFirst();
  }

  /**
   * Gives a session new secrets and scopes, only if its refresh token is still `refreshHash` (a refresh
   * token is used once: of two refreshes racing, one wins). Whether it did.
   */
  async rotateSession(
    id: string,
    refreshHash: string,
    next: Pick<
      ApiKey,
      | "key_hash"
      | "prefix"
      | "workspace_id"
      | "scopes"
      | "expires_at"
      | "refresh_hash"
      | "refresh_expires_at"
      | "upstream_refresh"
    >,
  ): Promise<boolean> {
    const r = await this.#db
      .updateTable("api_keys")
      .set(next)
      .where("id", "=", id)
      .where("refresh_hash", "=", refreshHash)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Forgets sessions that can never be used again: revoked before `before`, or past both their end and
   * their refresh's by then. Keys are never touched.
   */
  async pruneSessions(before: number): Promise<number> {
    const r = await this.#db
      .deleteFrom("api_keys")
      .where("kind", "=", "session")
      .where((eb) =>
        eb.or([
          eb("revoked_at", "<", before),
          eb.and([
            eb("expires_at", "<", before),
            eb.or([eb("refresh_expires_at", "is", null), eb("refresh_expires_at", "<", before)]),
          ]),
        ]),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** Change a key's per-minute limits (null: none); the key as it is now, or undefined for no such key. */
  /** Change where the key's work may run (within its workspace's: the caller checks); the key now, or undefined. */
  async setResidency(id: string, r: Pick<ApiKey, "region" | "countries">): Promise<ApiKey | undefined> {
    await this.#db.updateTable("api_keys").set(r).where("id", "=", id).execute();
    return this.get(id);
  }

  async setLimits(
    id: string,
    limits: Partial<Pick<ApiKey, "rpm_limit" | "tpm_limit">>,
  ): Promise<ApiKey | undefined> {
    if (Object.keys(limits).length > 0)
      await this.#db.updateTable("api_keys").set(limits).where("id", "=", id).execute();
    return this.get(id);
  }

  async touch(id: string, now: number): Promise<void> {
    await this.#db.updateTable("api_keys").set({ last_used_at: now }).where("id", "=", id).execute();
  }
}
