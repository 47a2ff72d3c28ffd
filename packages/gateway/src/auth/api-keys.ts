import { bearerToken } from "@beta9/http";
import { Beta9Error, type Scope, TOKEN_PREFIX } from "@beta9/protocol";
import type { ApiKey, Store, Workspace } from "@beta9/store";
import type { FastifyRequest } from "fastify";
import { type CallerResidency, callerResidency, residencyOf } from "./residency.ts";
import { hashSecret } from "./secrets.ts";

export interface Caller {
  keyId: string;
  workspaceId: string;
  scopes: readonly Scope[];
  /** The key's per-minute limits (null: none), read with the key on every request. */
  limits: { rpm: number | null; tpm: number | null };
  /** Its workspace's limits for all its keys together (null: none), read with the key. */
  workspaceLimits: { rpm: number | null; tpm: number | null };
  /** The key belongs to the operator's workspace, which runs the pool. */
  operator: boolean;
  /** Where its work may run: its workspace's countries narrowed by the key's, read with the key. */
  residency: CallerResidency;
}

declare module "fastify" {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/** Who each request authenticated as, for its audit event (written after the handler ran). */
const authenticated = new WeakMap<FastifyRequest, Caller>();

/** The caller a request authenticated as, if it did. */
export function authenticatedCaller(req: FastifyRequest): Caller | undefined {
  return authenticated.get(req);
}

/** The workspace the gateway makes on its first start; its admins run the pool. */
export const OPERATOR_WORKSPACE = "default";

const TOUCH_EVERY_MS = 60_000;
/** How long a key read from the store is trusted: another gateway's revocation shows here within it. */
const KEY_TTL_MS = 5_000;
const MAX_CACHED_KEYS = 10_000;

/**
 * Checks API keys and scopes. Known keys are kept for a few seconds, so a request costs no store
 * query; `forget` drops one at once (this gateway revoked it). `last_used_at` is written at most once
 * a minute per key.
 */
export class ApiKeyAuth {
  readonly #store: Store;
  readonly #touched = new Map<string, number>();
  readonly #known = new Map<string, Known>();
  readonly #ttlMs: number;
  constructor(store: Store, opts: { keyTtlMs?: number } = {}) {
    this.#store = store;
    this.#ttlMs = opts.keyTtlMs ?? KEY_TTL_MS;
  }

  /** Stop trusting a key read earlier (it was revoked or changed). */
  /** Read the keys of a workspace anew on their next request (its limits changed). */
  forgetWorkspace(workspaceId: string): void {
    for (const [hash, k] of this.#known) if (k.key.workspace_id === workspaceId) this.#known.delete(hash);
  }

  forget(keyId: string): void {
    for (const [hash, k] of this.#known) if (k.key.id === keyId) this.#known.delete(hash);
  }

  /** `need`: the scope the route requires; a list means any one of them will do. */
  async authenticate(req: FastifyRequest, need: Scope | readonly Scope[]): Promise<Caller> {
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      throw new Beta9Error(
        "unauthorized",
        "missing API key: send `Authorization: Bearer b9_…` (the admin key is in the gateway's data dir, file admin-key)",
      );
    }
    if (!token.startsWith(TOKEN_PREFIX.apiKey)) {
      throw new Beta9Error(
        "api_key_invalid",
        "that is not an API key (API keys start with b9_); create one with `b9 key create`",
      );
    }
    const known = await this.#lookup(hashSecret(token));
    const key = known?.key;
    if (!known || !key)
      throw new Beta9Error(
        "api_key_invalid",
        "unknown API key; check BETA9_API_KEY or create a key with `b9 key create`",
      );
    if (key.revoked_at !== null)
      throw new Beta9Error("api_key_revoked", "this API key was revoked; ask an admin for a new one");
    const scopes = parseScopes(key);
    const caller: Caller = {
      keyId: key.id,
      workspaceId: key.workspace_id,
      scopes,
      limits: { rpm: key.rpm_limit, tpm: key.tpm_limit },
      workspaceLimits: known.workspaceLimits,
      operator: known.operator,
      residency: known.residency,
    };
    // Known from here, so a refusal for a missing scope is recorded as this key's.
    authenticated.set(req, caller);
    const needs: readonly Scope[] = typeof need === "string" ? [need] : need;
    if (!scopes.includes("admin") && !needs.some((n) => scopes.includes(n))) {
      const names = needs.map((n) => `'${n}'`).join(" or ");
      throw new Beta9Error(
        "scope_missing",
        `this API key lacks the ${names} scope; use a key created with --scopes ${needs[0]}`,
      );
    }
    this.#touch(key);
    return caller;
  }

  /**
   * A key of the operator's workspace (the bootstrap workspace, `default`) with `need`: what running
   * the pool takes (machines, join tokens, pools, workspaces, keys for other workspaces). `what` ends
   * the refusal's sentence, e.g. "create join tokens".
   */
  async operator(req: FastifyRequest, what: string, need: Scope = "admin"): Promise<Caller> {
    const caller = await this.authenticate(req, need);
    if (!caller.operator) {
      throw new Beta9Error(
        "forbidden",
        `only a key of the ${OPERATOR_WORKSPACE} workspace, which runs the pool, may ${what}; ask the pool's operator`,
      );
    }
    return caller;
  }

  /**
   * Authenticates the request (`need`) and returns the workspace it acts on: the caller's own, or the
   * one it names, which takes a key of the operator's workspace (`what` ends the refusal, e.g. "read
   * another workspace's usage").
   */
  async actingWorkspace(
    req: FastifyRequest,
    need: Scope,
    named: string | undefined,
    what: string,
  ): Promise<Workspace> {
    const caller = await this.authenticate(req, need);
    const own = await this.#store.workspaces.byId(caller.workspaceId);
    if (named === undefined || named === own?.name) {
      if (!own) throw new Beta9Error("not_found", "this key's workspace is gone; ask the pool's operator");
      return own;
    }
    if (!caller.operator) await this.operator(req, what, need);
    const other = await this.#store.workspaces.byName(named);
    if (!other)
      throw new Beta9Error(
        "not_found",
        `no workspace named ${named}; list them with \`b9 workspace list\` or create it with \`b9 workspace create ${named}\``,
      );
    return other;
  }

  async #lookup(hash: string): Promise<Known | undefined> {
    const now = Date.now();
    const known = this.#known.get(hash);
    if (known && now - known.readAt < this.#ttlMs) return known;
    const key = await this.#store.keys.byHash(hash);
    // Only keys that exist are kept: forged keys must not fill the memory.
    if (!key) {
      this.#known.delete(hash);
      return undefined;
    }
    const workspace = await this.#store.workspaces.byId(key.workspace_id);
    const fresh: Known = {
      key,
      workspaceLimits: { rpm: workspace?.rpm_limit ?? null, tpm: workspace?.tpm_limit ?? null },
      operator: workspace?.name === OPERATOR_WORKSPACE,
      // A key whose workspace is gone runs nowhere, rather than anywhere.
      residency: workspace
        ? callerResidency(residencyOf(workspace), residencyOf(key))
        : { countries: new Set(), text: "nowhere (its workspace is gone)" },
      readAt: now,
    };
    if (this.#known.size >= MAX_CACHED_KEYS) this.#known.delete(this.#known.keys().next().value!);
    this.#known.set(hash, fresh);
    return fresh;
  }

  #touch(key: ApiKey): void {
    const now = Date.now();
    if (now - (this.#touched.get(key.id) ?? 0) < TOUCH_EVERY_MS) return;
    this.#touched.set(key.id, now);
    // Best effort: a lost last-used time is not worth failing a request for.
    this.#store.keys.touch(key.id, now).catch(() => {});
  }
}

/** A key as read from the store, with its workspace's limits. */
interface Known {
  key: ApiKey;
  workspaceLimits: Caller["workspaceLimits"];
  operator: boolean;
  residency: CallerResidency;
  readAt: number;
}

export function parseScopes(key: Pick<ApiKey, "scopes">): Scope[] {
  return key.scopes.split(",").filter(Boolean) as Scope[];
}
