import type { Logger } from "@beta9/http";
import { Beta9Error, SESSION_PREFIX, type SessionTokens } from "@beta9/protocol";
import type { Store } from "@beta9/store";
import type { Audit, AuditInput } from "../../audit/audit.ts";
import { hashSecret, newSecret } from "../secrets.ts";
import { identityId, type OpenedSession, type Sessions } from "../sessions.ts";
import type { OidcProvider, Vouched } from "./provider.ts";
import { grant, type OidcRule, ROLE_SCOPES } from "./rules.ts";
import { seal, unseal } from "./seal.ts";

/** The CLI's bearer token lives this long at most; its refresh token renews it. */
const CLI_ACCESS_TTL_MS = 15 * 60_000;

/** Where a sign-in came from, for its audit event. */
export type SignInVia = "dashboard" | "cli" | "token" | "refresh";

export interface SignInContext {
  requestId: string;
  ip: string | undefined;
}

/**
 * What the provider's word is worth here: the rules map the person's groups to a workspace and a role,
 * default deny; every sign-in and every refusal is an audit event with the identity as actor.
 */
export class SsoSignIn {
  readonly provider: OidcProvider;
  readonly #rules: readonly OidcRule[];
  readonly #store: Store;
  readonly #sessions: Sessions;
  readonly #audit: Audit;
  readonly #log: Logger;
  readonly #forget: (sessionId: string) => void;

  constructor(deps: {
    /** Stop trusting a session read earlier (ended here). */
    forget: (sessionId: string) => void;
    provider: OidcProvider;
    rules: readonly OidcRule[];
    store: Store;
    sessions: Sessions;
    audit: Audit;
    log: Logger;
  }) {
    this.provider = deps.provider;
    this.#rules = deps.rules;
    this.#store = deps.store;
    this.#sessions = deps.sessions;
    this.#audit = deps.audit;
    this.#log = deps.log;
    this.#forget = deps.forget;
  }

  async #end(id: string): Promise<void> {
    await this.#store.keys.revoke(id, Date.now());
    this.#forget(id);
  }

  /** The workspace (id) and rule the person's groups give, recorded either way; refused when none. */
  async admit(
    v: Vouched,
    via: SignInVia,
    at: SignInContext,
  ): Promise<{ workspaceId: string; rule: OidcRule }> {
    const rule = grant(this.#rules, v.groups);
    const workspace = rule ? await this.#store.workspaces.byName(rule.workspace) : undefined;
    const actor = { type: "identity" as const, id: identityId(v.identity) };
    const action = via === "refresh" ? "auth.refresh" : "auth.login";
    const details = { via, name: v.identity.name, groups: v.groups, ip: at.ip ?? null };
    if (!rule || !workspace) {
      if (rule)
        this.#log.error(
          { workspace: rule.workspace },
          "an --oidc-rule names a workspace that does not exist",
        );
      await this.#record({
        actor,
        workspaceId: null,
        action,
        outcome: "refused",
        requestId: at.requestId,
        details,
      });
      throw new Beta9Error(
        "sso_refused",
        rule
          ? `your groups give you workspace ${rule.workspace}, which does not exist; tell the pool's operator`
          : "you signed in, but none of your groups is given a workspace on this gateway; ask the pool's operator to add you",
      );
    }
    await this.#record({
      actor,
      workspaceId: workspace.id,
      action,
      outcome: "ok",
      requestId: at.requestId,
      details: { ...details, workspace: rule.workspace, role: rule.role },
    });
    return { workspaceId: workspace.id, rule };
  }

  async #record(e: Omit<AuditInput, "resource">): Promise<void> {
    try {
      await this.#audit.record({ resource: null, ...e });
    } catch {
      // Fails closed: a sign-in the log cannot hold gives no session.
      throw new Beta9Error(
        "unavailable",
        "the audit log cannot be written right now, so signing in is refused; retry once the gateway's database is fixed",
      );
    }
  }

  /** A dashboard session for a person the provider vouched for. */
  async openDashboard(v: Vouched, at: SignInContext): Promise<OpenedSession> {
    const { workspaceId, rule } = await this.admit(v, "dashboard", at);
    return this.#sessions.openForIdentity(v.identity, workspaceId, ROLE_SCOPES[rule.role]);
  }

  /** The CLI's tokens for a person the provider vouched for (device flow, or an ID token presented). */
  async openCli(v: Vouched, via: SignInVia, at: SignInContext): Promise<SessionTokens> {
    const { workspaceId, rule } = await this.admit(v, via, at);
    const refresh = newSecret(SESSION_PREFIX.refresh);
    const refreshExpiresAt = Date.now() + this.#sessions.ttlMs;
    const { secret, row } = await this.#sessions.openForIdentity(
      v.identity,
      workspaceId,
      ROLE_SCOPES[rule.role],
      {
        hash: hashSecret(refresh),
        expiresAt: refreshExpiresAt,
        upstream: v.refreshToken ? seal(v.refreshToken, refresh) : null,
        accessTtlMs: Math.min(CLI_ACCESS_TTL_MS, this.#sessions.ttlMs),
      },
    );
    return {
      identity: await this.#sessions.identity(row),
      access_token: secret,
      expires_at: new Date(row.expires_at ?? 0).toISOString(),
      refresh_token: refresh,
      refresh_expires_at: new Date(refreshExpiresAt).toISOString(),
    };
  }

  /**
   * New CLI tokens for a refresh token, used once. The provider is asked again, so a person removed
   * from their group (or from the provider) loses access here; their session is then ended.
   */
  async refresh(refreshToken: string, at: SignInContext): Promise<SessionTokens> {
    const ended = () =>
      new Beta9Error(
        "session_expired",
        "this sign-in has ended (expired, logged out or refused); run b9 login --sso",
      );
    if (!refreshToken.startsWith(SESSION_PREFIX.refresh)) throw ended();
    const hash = hashSecret(refreshToken);
    const row = await this.#store.keys.sessionByRefresh(hash, Date.now());
    if (!row?.issuer || !row.subject) throw ended();
    const upstream = row.upstream_refresh ? unseal(row.upstream_refresh, refreshToken) : undefined;
    if (!upstream) throw ended();
    const identity = { issuer: row.issuer, subject: row.subject, name: row.display_name ?? row.subject };
    let v: Vouched;
    try {
      v = await this.provider.refresh(upstream, identity);
    } catch (err) {
      if (err instanceof Beta9Error && err.code === "session_expired") await this.#end(row.id);
      throw err;
    }
    let admitted: { workspaceId: string; rule: OidcRule };
    try {
      admitted = await this.admit(v, "refresh", at);
    } catch (err) {
      if (err instanceof Beta9Error && err.code === "sso_refused") await this.#end(row.id);
      throw err;
    }
    const access = newSecret(SESSION_PREFIX.session);
    const next = newSecret(SESSION_PREFIX.refresh);
    const now = Date.now();
    // Sliding: each refresh asked the provider, whose own refresh token bounds how long this lasts.
    const refreshExpiresAt = now + this.#sessions.ttlMs;
    const expiresAt = now + Math.min(CLI_ACCESS_TTL_MS, this.#sessions.ttlMs);
    const rotated = await this.#store.keys.rotateSession(row.id, hash, {
      key_hash: hashSecret(access),
      prefix: access.slice(0, 10),
      workspace_id: admitted.workspaceId,
      scopes: ROLE_SCOPES[admitted.rule.role].join(","),
      expires_at: expiresAt,
      refresh_hash: hashSecret(next),
      refresh_expires_at: refreshExpiresAt,
      upstream_refresh: seal(v.refreshToken ?? upstream, next),
    });
    // Another refresh with the same token won: this one is a replay.
    if (!rotated) throw ended();
    this.#forget(row.id);
    const updated = await this.#store.keys.get(row.id);
    if (!updated) throw ended();
    return {
      identity: await this.#sessions.identity(updated),
      access_token: access,
      expires_at: new Date(expiresAt).toISOString(),
      refresh_token: next,
      refresh_expires_at: new Date(refreshExpiresAt).toISOString(),
    };
  }
}
