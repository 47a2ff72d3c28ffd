import { bearerToken } from "@beta9/http";
import { Beta9Error } from "@beta9/protocol";
import type { Store } from "@beta9/store";
import type { FastifyInstance } from "fastify";
import type { Audit, AuditInput } from "../audit/audit.ts";
import { MANAGEMENT_ACTIONS, managementKeys } from "../audit/management.ts";
import { hashSecret } from "./secrets.ts";
import { sessionCookie } from "./sessions.ts";

/** A presented API key or machine token that was refused: nobody is proven, so nobody acts. */
const REFUSED_CREDENTIAL = new Set([
  "unauthorized",
  "api_key_invalid",
  "api_key_revoked",
  "credential_invalid",
  "machine_unknown",
  "session_expired",
]);
/** A real key that asked for what it may not do (a scope it lacks, another workspace, the operator's work). */
const FORBIDDEN = new Set(["scope_missing", "forbidden", "csrf"]);
/** Why a join was refused: a bad join token, a machine id the pool has, a country the token contradicts. */
const REFUSED_JOIN = new Set([
  "join_token_invalid",
  "join_token_expired",
  "join_token_used_up",
  "join_token_revoked",
  "machine_id_taken",
  "country_mismatch",
  "conflict",
]);
const SESSION_ROUTE = "/api/v1/auth/session";
const JOIN_ROUTES = new Set(["/api/v1/machines/join", "/api/v1/machine/register"]);

/** What a refused request showed of itself; its secret is kept only as Audit.hmac. */
export interface Attempt {
  requestId: string;
  ip: string | undefined;
  /** "METHOD /route" as registered (or the path, when no route matched). */
  route: string;
  /** The API key, machine token or join token presented, if any. */
  secret: string | undefined;
  /** The machine id it spoke for (joins, keepalives, the agent channel). */
  machineId: string | undefined;
}

/**
 * The security event for a refusal, or undefined when `err` is no security refusal (a bad body, a
 * missing model). The presented secret is kept only as a keyed HMAC: the same forged key seen twice is
 * recognisable, and the log never holds one in clear.
 */
export async function refusalEvent(
  deps: { audit: Audit; store: Store },
  err: unknown,
  at: Attempt,
): Promise<AuditInput | undefined> {
  if (!(err instanceof Beta9Error)) return undefined;
  const details: Record<string, unknown> = {
    code: err.code,
    status: err.status,
    route: at.route,
    ip: at.ip ?? null,
    ...(at.secret ? { credential: deps.audit.hmac(at.secret) } : {}),
  };
  const machine = at.machineId ? `machine:${at.machineId}` : null;
  const base = { requestId: at.requestId, outcome: "refused" as const, details };
  const path = at.route.slice(at.route.indexOf(" ") + 1);
  if (JOIN_ROUTES.has(path) && (REFUSED_JOIN.has(err.code) || REFUSED_CREDENTIAL.has(err.code)))
    return { ...base, actor: ANONYMOUS, workspaceId: null, action: "machine.join", resource: machine };
  if (err.code === "credential_machine_mismatch")
    // A real machine's secret presented for another machine id: a replay, the gravest of these.
    return {
      ...base,
      actor: ANONYMOUS,
      workspaceId: null,
      action: "auth.machine_mismatch",
      resource: machine,
    };
  if (REFUSED_CREDENTIAL.has(err.code))
    return { ...base, actor: ANONYMOUS, workspaceId: null, action: "auth.refused", resource: machine };
  if (FORBIDDEN.has(err.code)) {
    // The key is real (only its rights fell short): the event names it and its workspace.
    const key = at.secret
      ? await deps.store.keys.byHash(hashSecret(at.secret)).catch(() => undefined)
      : undefined;
    return {
      ...base,
      actor: key ? { type: "key", id: key.id } : ANONYMOUS,
      workspaceId: key?.workspace_id ?? null,
      action: "auth.forbidden",
      resource: null,
    };
  }
  return undefined;
}

const ANONYMOUS = { type: "anonymous" as const, id: null };

/**
 * Security events for every route: refused credentials, forbidden attempts, refused joins. They go
 * through `enqueue` (batched, fail open), not `record`: whoever sends them chooses how many, and one
 * synchronous chained write per forged key would hand an attacker the store's write rate (and, failing
 * closed, an outage). The refusal itself never depends on the log.
 */
export function installSecurityAudit(app: FastifyInstance, deps: { audit: Audit; store: Store }): void {
  app.addHook("onError", async (req, _reply, err) => {
    if (!(err instanceof Beta9Error) || err.status >= 500) return;
    // A management route records its refusals itself (audit/management.ts): one event per call.
    const url = req.routeOptions.url;
    if (url && managementKeys({ method: req.method, url }).some((k) => MANAGEMENT_ACTIONS[k])) return;
    const body = req.body as { machine_id?: unknown; token?: unknown } | null | undefined;
    const secret =
      bearerToken(req.headers.authorization) ??
      sessionCookie(req) ??
      (typeof body?.token === "string" ? body.token : undefined);
    // "Am I signed in?" asked with nothing to show is how every signed-out visit to the dashboard
    // starts: no credential was refused, so it is no security event.
    if (secret === undefined && req.method === "GET" && url === SESSION_ROUTE) return;
    const event = await refusalEvent(deps, err, {
      requestId: req.id,
      ip: req.ip,
      route: `${req.method} ${url ?? req.url.split("?")[0]}`,
      secret,
      machineId: typeof body?.machine_id === "string" ? body.machine_id : undefined,
    });
    if (event) deps.audit.enqueue(event);
  });
}

/**
 * A machine joined: recorded with `record`, failing closed (the caller answers 503 and the machine
 * never gets its credential, so nothing joined unrecorded can connect).
 */
export async function recordJoin(
  audit: Audit,
  j: {
    requestId: string;
    machineId: string;
    pool: string;
    country: string | null;
    ip: string | undefined;
    protocol: string;
  },
): Promise<void> {
  try {
    await audit.record({
      actor: { type: "machine", id: j.machineId },
      workspaceId: null,
      action: "machine.join",
      resource: `machine:${j.machineId}`,
      outcome: "ok",
      requestId: j.requestId,
      details: { pool: j.pool, country: j.country, ip: j.ip ?? null, protocol: j.protocol },
    });
  } catch {
    throw new Beta9Error(
      "unavailable",
      "the machine joined, but the audit log could not record it, so its credential is withheld; fix the gateway's database, then run b9agent init again under a new --name",
    );
  }
}
