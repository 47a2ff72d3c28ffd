import { bearerToken } from "@beta9/http";
import { Beta9Error, CSRF_HEADER, type Scope, SESSION_PREFIX, TOKEN_PREFIX } from "@beta9/protocol";
import type { ApiKey, Store, Workspace } from "@beta9/store";
import type { FastifyRequest } from "fastify";
import { type CallerResidency, callerResidency, residencyOf } from "./residency.ts";
import { hashSecret } from "./secrets.ts";
import { identityId, sameCsrf, sessionCookie } from "./sessions.ts";

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
  /** Its workspace keeps prompts and answers in its inference audit events (its GDPR choice), read with the key. */
  auditContent: boolean;
  /** A signed-in session (cookie or b9s_ token): its row id and secret, and whose it is ("issuer#subject" for SSO). */
  session?: { id: string; secret: string; identity: string | null; expiresAt: number };
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

/** Records who a request acts as when it proved it another way (a login with a key in its body). */
export function actingAs(req: FastifyRequest, caller: Caller): void {
  authenticated.set(req, caller);
}

/** Methods that change something: sent with the session cookie, they must carry the CSRF token. */
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

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

  /** Its sessions too: a key's sessions end with it. */
  forget(keyId: string): void {
    for (const [hash, k] of this.#known)
      if (k.key.id === keyId || k.key.parent_id === keyId) this.#known.delete(hash);
  }

  /** `need`: the scope the route requires; a list means any one of them will do. */
  async authenticate(req: FastifyRequest, need: Scope | readonly Scope[]): Promise<Caller> {
    const caller = await this.identify(req);
    const needs: readonly Scope[] = typeof need === "string" ? [need] : need;
    if (!caller.scopes.includes("admin") && !needs.some((n) => caller.scopes.includes(n))) {
      const names = needs.map((n) => `'${n}'`).join(" or ");
      throw new Beta9Error(
        "scope_missing",
        caller.session?.identity
          ? `your sign-in lacks the ${names} scope: the gateway's rules give your groups less; ask the pool's operator`
          : `this API key lacks the ${names} scope; use a key created with --scopes ${needs[0]}`,
      );
    }
    this.#touch(caller.session?.id ?? caller.keyId);
    return caller;
  }

  /**
   * Who the request is, whatever it may do: a bearer API key, a bearer session token (the CLI's), or
   * the session cookie (the dashboard's; its changes must carry the CSRF token: a cookie is sent by
   * the browser on its own, a header only by the page that read the token).
   */
  async identify(req: FastifyRequest): Promise<Caller> {
    const bearer = bearerToken(req.headers.authorization);
    const cookie = bearer === undefined ? sessionCookie(req) : undefined;
    const token = bearer ?? cookie;
    if (!token) {
      throw new Beta9Error(
        "unauthorized",
        "missing API key: send `Authorization: Bearer b9_…` (the admin key is in the gateway's data dir, file admin-key)",
      );
    }
    if (token.startsWith(SESSION_PREFIX.session)) {
      const caller = await this.#session(token);
      authenticated.set(req, caller);
      if (cookie !== undefined && UNSAFE.has(req.method)) {
        const presented = req.headers[CSRF_HEADER];
        if (!sameCsrf(typeof presented === "string" ? presented : undefined, token))
          throw new Beta9Error(
            "csrf",
            `a change sent with the session cookie must carry the header ${CSRF_HEADER} with the session's csrf_token; reload the page`,
          );
      }
      return caller;
    }
    if (cookie !== undefined) throw sessionEnded();
    if (!token.startsWith(TOKEN_PREFIX.apiKey)) {
      throw new Beta9Error(
        "api_key_invalid",
        "that is not an API key (API keys start with b9_); create one with `b9 key create`",
      );
    }
    const known = await this.#lookup(hashSecret(token));
    const key = known?.key;
    // A session's row is found by its own secret only (b9s_…), never as a key.
    if (!known || !key || key.kind !== "key")
      throw new Beta9Error(
        "api_key_invalid",
        "unknown API key; check BETA9_API_KEY or create a key with `b9 key create`",
      );
    if (key.revoked_at !== null)
      throw new Beta9Error("api_key_revoked", "this API key was revoked; ask an admin for a new one");
    const caller = callerOf(known, key);
    // Known from here, so a refusal for a missing scope is recorded as this key's.
    authenticated.set(req, caller);
    return caller;
  }

  /** The caller of a live session; refused alike when forged, ended, logged out or its key revoked. */
  async #session(secret: string): Promise<Caller> {
    const known = await this.#lookup(hashSecret(secret));
    const row = known?.key;
    if (!known || !row || row.kind !== "session") throw sessionEnded();
    if (row.revoked_at !== null || (row.expires_at ?? 0) <= Date.now()) throw sessionEnded();
    // A key's session acts as the key: its scopes, limits and usage, and it ends with it.
    const acting = known.parent ?? row;
    if (row.parent_id !== null && (!known.parent || known.parent.revoked_at !== null)) throw sessionEnded();
    return {
      ...callerOf(known, acting),
      session: {
        id: row.id,
        secret,
        identity: row.issuer && row.subject ? identityId({ issuer: row.issuer, subject: row.subject }) : null,
        expiresAt: row.expires_at ?? 0,
      },
    };
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
    const parent = key.parent_id ? await this.#store.keys.get(key.parent_id) : undefined;
    const acting = parent ?? key;
    const workspace = await this.#store.workspaces.byId(key.workspace_id);
    const fresh: Known = {
      key,
      parent,
      workspaceLimits: { rpm: workspace?.rpm_limit ?? null, tpm: workspace?.tpm_limit ?? null },
      operator: workspace?.name === OPERATOR_WORKSPACE,
      // A key whose workspace is gone runs nowhere, rather than anywhere.
      residency: workspace
        ? callerResidency(residencyOf(workspace), residencyOf(acting))
        : { countries: new Set(), text: "nowhere (its workspace is gone)" },
      auditContent: (workspace?.audit_content_since ?? null) !== null,
      readAt: now,
    };
    if (this.#known.size >= MAX_CACHED_KEYS) this.#known.delete(this.#known.keys().next().value!);
    this.#known.set(hash, fresh);
    return fresh;
  }

  #touch(id: string): void {
    const now = Date.now();
    if (now - (this.#touched.get(id) ?? 0) < TOUCH_EVERY_MS) return;
    this.#touched.set(id, now);
    // Best effort: a lost last-used time is not worth failing a request for.
    this.#store.keys.touch(id, now).catch(() => {});
  }
}

function sessionEnded(): Beta9Error {
  return new Beta9Error(
    "session_expired",
    "your session has ended (expired, logged out, or its key revoked); sign in again",
  );
}

/** The caller acting as `acting` (the key itself, or the key a session was opened with). */
function callerOf(known: Known, acting: ApiKey): Caller {
  return {
    keyId: acting.id,
    workspaceId: acting.workspace_id,
    scopes: parseScopes(acting),
    limits: { rpm: acting.rpm_limit, tpm: acting.tpm_limit },
    workspaceLimits: known.workspaceLimits,
    operator: known.operator,
    residency: known.residency,
    auditContent: known.auditContent,
  };
}

/** A key as read from the store, with its workspace's limits. */
interface Known {
  key: ApiKey;
  /** The key a session was opened with (missing: it is gone). */
  parent: ApiKey | undefined;
  workspaceLimits: Caller["workspaceLimits"];
  operator: boolean;
  residency: CallerResidency;
  auditContent: boolean;
  readAt: number;
}

export function parseScopes(key: Pick<ApiKey, "scopes">): Scope[] {
  return key.scopes.split(",").filter(Boolean) as Scope[];
}
