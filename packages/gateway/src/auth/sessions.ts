import { createHash, timingSafeEqual } from "node:crypto";
import {
  Beta9Error,
  type Scope,
  SESSION_COOKIE,
  SESSION_PREFIX,
  type SessionIdentity,
  TOKEN_PREFIX,
} from "@beta9/protocol";
import type { ApiKey, Store } from "@beta9/store";
import type { FastifyRequest } from "fastify";
import { OPERATOR_WORKSPACE, parseScopes } from "./api-keys.ts";
import { hashSecret, newId, newSecret } from "./secrets.ts";

/*
 * A session is a row of api_keys of kind "session" (see the 2026-12-08T0100 migration): whatever a key
 * gets, a session gets unchanged — scopes, workspace, residency, limits, usage, revocation, audit.
 * Its secret (b9s_…) is the cookie's value or the CLI's bearer token, stored hashed like a key's.
 * A session opened with an API key names it as parent and acts as that key (its scopes, its limits,
 * its usage): revoking the key ends it. A single sign-on session carries its own scopes, from the
 * rules, and the identity (issuer, subject) it belongs to.
 */

export const DEFAULT_SESSION_TTL_MS = 12 * 3_600_000;

/**
 * The CSRF token of a session: derived from its secret, so nothing more is stored, and only who can
 * read the session's answers (the page itself, never another site: the cookie is HttpOnly) knows it.
 */
export function csrfToken(secret: string): string {
  return createHash("sha256").update("b9-csrf\0").update(secret).digest("base64url");
}

export function sameCsrf(presented: string | undefined, secret: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(csrfToken(secret));
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session cookie's value, if the request carries one. */
export function sessionCookie(req: FastifyRequest): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const value = part.slice(eq + 1).trim();
    return value === "" ? undefined : value;
  }
  return undefined;
}

/** Set-Cookie for a session (HttpOnly: no script reads it; Strict: no other site sends it). */
export function sessionSetCookie(secret: string, expiresAt: number, secure: boolean): string {
  const maxAge = Math.max(0, Math.floor((expiresAt - Date.now()) / 1000));
  return `${SESSION_COOKIE}=${secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}${secure ? "; Secure" : ""}`;
}

export function clearSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? "; Secure" : ""}`;
}

/** A signed-in person, as the identity provider names them. Identity is (issuer, subject), never the email. */
export interface SsoIdentity {
  issuer: string;
  subject: string;
  name: string;
}

/** "issuer#subject": the audit log's actor id for a signed-in identity. */
export function identityId(i: Pick<SsoIdentity, "issuer" | "subject">): string {
  return `${i.issuer}#${i.subject}`;
}

/** A session just opened: its secret (shown once, to its holder) and its row. */
export interface OpenedSession {
  secret: string;
  row: ApiKey;
}

export class Sessions {
  readonly #store: Store;
  readonly ttlMs: number;
  constructor(store: Store, opts: { ttlMs?: number } = {}) {
    this.#store = store;
    this.ttlMs = opts.ttlMs ?? DEFAULT_SESSION_TTL_MS;
  }

  /** A dashboard session from an API key: refused as the key itself would be. */
  async openWithKey(apiKey: string): Promise<OpenedSession & { key: ApiKey }> {
    const key = apiKey.startsWith(TOKEN_PREFIX.apiKey)
      ? await this.#store.keys.byHash(hashSecret(apiKey))
      : undefined;
    // A session cannot open a session: its lifetime would outlive the one it came from.
    if (!key || key.kind !== "key")
      throw new Beta9Error(
        "api_key_invalid",
        "unknown API key; paste a key that starts with b9_ (b9 key create makes one)",
      );
    if (key.revoked_at !== null)
      throw new Beta9Error("api_key_revoked", "this API key was revoked; ask an admin for a new one");
    const opened = await this.#insert({
      name: key.name,
      workspace_id: key.workspace_id,
      scopes: key.scopes,
      parent_id: key.id,
      rpm_limit: key.rpm_limit,
      tpm_limit: key.tpm_limit,
      region: key.region,
      countries: key.countries,
    });
    return { ...opened, key };
  }

  /** A session for a person the identity provider vouched for, with the scopes the rules gave. */
  async openForIdentity(
    who: SsoIdentity,
    workspaceId: string,
    scopes: readonly Scope[],
    refresh?: { hash: string; expiresAt: number; upstream: string | null; accessTtlMs: number },
  ): Promise<OpenedSession> {
    return this.#insert(
      {
        name: who.name,
        workspace_id: workspaceId,
        scopes: scopes.join(","),
        issuer: who.issuer,
        subject: who.subject,
        display_name: who.name,
        ...(refresh
          ? {
              refresh_hash: refresh.hash,
              refresh_expires_at: refresh.expiresAt,
              upstream_refresh: refresh.upstream,
            }
          : {}),
      },
      refresh?.accessTtlMs,
    );
  }

  async #insert(
    fields: Pick<ApiKey, "name" | "workspace_id" | "scopes"> & Partial<Omit<ApiKey, "id" | "key_hash">>,
    ttlMs = this.ttlMs,
  ): Promise<OpenedSession> {
    const secret = newSecret(SESSION_PREFIX.session);
    const now = Date.now();
    const row = {
      id: newId("ses_"),
      prefix: secret.slice(0, 10),
      key_hash: hashSecret(secret),
      revoked_at: null,
      created_at: now,
      last_used_at: null,
      rpm_limit: null,
      tpm_limit: null,
      ...fields,
      kind: "session",
      expires_at: now + ttlMs,
    };
    await this.#store.keys.insert(row);
    const stored = await this.#store.keys.get(row.id);
    if (!stored) throw new Beta9Error("internal", "the session could not be stored; sign in again");
    return { secret, row: stored };
  }

  /** Ends the session whose secret this is (logout); its id, if there was one to end. */
  async revoke(secret: string): Promise<string | undefined> {
    const row = await this.#store.keys.byHash(hashSecret(secret));
    if (!row || row.kind !== "session") return undefined;
    await this.#store.keys.revoke(row.id, Date.now());
    return row.id;
  }

  /** What the dashboard shows of a session: who, in which workspace, with what, until when. */
  async view(
    row: ApiKey,
    secret: string,
  ): Promise<{
    identity: SessionIdentity;
    csrf_token: string;
    expires_at: string;
  }> {
    return {
      identity: await this.identity(row),
      csrf_token: csrfToken(secret),
      expires_at: new Date(row.expires_at ?? Date.now()).toISOString(),
    };
  }

  async identity(row: ApiKey): Promise<SessionIdentity> {
    // A key's session shows its key as it is now (scopes changed, or revoked: refused before here).
    const parent = row.parent_id ? await this.#store.keys.get(row.parent_id) : undefined;
    const ws = await this.#store.workspaces.byId(row.workspace_id);
    return {
      kind: row.issuer ? "sso" : "key",
      name: row.display_name ?? parent?.name ?? row.name,
      workspace: ws?.name ?? "",
      scopes: parseScopes(parent ?? row),
      operator: ws?.name === OPERATOR_WORKSPACE,
    };
  }
}
