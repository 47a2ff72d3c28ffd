import type { Logger } from "@beta9/http";
import { Beta9Error } from "@beta9/protocol";
import type { Store } from "@beta9/store";
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onSendHookHandler,
  preHandlerHookHandler,
  RouteOptions,
} from "fastify";
import type { Counter } from "prom-client";
import { authenticatedCaller } from "../auth/api-keys.ts";
import type { AuditInput } from "./audit.ts";
import type { AuditLog } from "./log.ts";

type Req = FastifyRequest<{ Params: Record<string, string>; Body: Record<string, unknown> | undefined }>;

/** How one management route is recorded: its action, and the resource from the request or its answer. */
export interface ManagementAction {
  action: string;
  resource(req: Req, answer: Record<string, unknown> | undefined): string | null;
  /** The workspace acted on, by name, when the route names one (else the caller's). */
  workspaceName?(req: Req): string | undefined;
  /** Facts worth keeping; never a secret in clear. */
  details?(req: Req): Record<string, unknown>;
}

const null_ = () => null;
const param = (kind: string, name: string) => (req: Req) => `${kind}:${req.params[name] ?? ""}`;
const answered = (kind: string, field: string) => (_req: Req, a: Record<string, unknown> | undefined) =>
  a && typeof a[field] === "string" ? `${kind}:${a[field]}` : null;
const bodyField = (field: string) => (req: Req) => {
  const v = req.body?.[field];
  return typeof v === "string" ? v : undefined;
};
/** The body's own fields, those that are facts of the change (names, scopes, limits, countries). */
const bodyFacts =
  (...fields: string[]) =>
  (req: Req) =>
    Object.fromEntries(fields.filter((f) => req.body?.[f] !== undefined).map((f) => [f, req.body?.[f]]));

/**
 * Every management route that changes something, "METHOD url" → how it is recorded. A route missing
 * here fails test/audit-routes.test.ts, so a new one cannot go unaudited.
 */
export const MANAGEMENT_ACTIONS: Record<string, ManagementAction> = {
  "POST /api/v1/tokens": {
    action: "token.create",
    resource: answered("token", "id"),
    details: bodyFacts("pool", "uses", "ttl_seconds", "country", "description"),
  },
  "DELETE /api/v1/tokens/:id": { action: "token.revoke", resource: param("token", "id") },
  "POST /api/v1/keys": {
    action: "key.create",
    resource: answered("key", "id"),
    workspaceName: bodyField("workspace"),
    details: bodyFacts("name", "scopes", "rpm_limit", "tpm_limit", "countries", "region"),
  },
  "POST /api/v1/keys/:id/limits": {
    action: "key.limits",
    resource: param("key", "id"),
    details: bodyFacts("rpm_limit", "tpm_limit"),
  },
  "POST /api/v1/keys/:id/residency": {
    action: "key.residency",
    resource: param("key", "id"),
    details: bodyFacts("countries", "region"),
  },
  "DELETE /api/v1/keys/:id": { action: "key.revoke", resource: param("key", "id") },
  "POST /api/v1/machines/:id/cordon": { action: "machine.cordon", resource: param("machine", "id") },
  "POST /api/v1/machines/:id/drain": { action: "machine.drain", resource: param("machine", "id") },
  "POST /api/v1/machines/:id/uncordon": { action: "machine.uncordon", resource: param("machine", "id") },
  "PATCH /api/v1/machines/:id": {
    action: "machine.set",
    resource: param("machine", "id"),
    details: bodyFacts("country", "pue"),
  },
  "DELETE /api/v1/machines/:id": { action: "machine.remove", resource: param("machine", "id") },
  "POST /api/v1/pools": {
    action: "pool.create",
    resource: (req) => `pool:${bodyField("name")(req) ?? ""}`,
    details: bodyFacts("description"),
  },
  "POST /api/v1/workspaces": {
    action: "workspace.create",
    resource: (req) => `workspace:${bodyField("name")(req) ?? ""}`,
    workspaceName: bodyField("name"),
    details: bodyFacts("rpm_limit", "tpm_limit", "countries", "region"),
  },
  "POST /api/v1/workspaces/:name/limits": {
    action: "workspace.limits",
    resource: param("workspace", "name"),
    workspaceName: (req) => req.params.name,
    details: (req) => ({ ...req.body }),
  },
  "POST /api/v1/workspaces/:name/residency": {
    action: "workspace.residency",
    resource: param("workspace", "name"),
    workspaceName: (req) => req.params.name,
    details: bodyFacts("countries", "region"),
  },
  "POST /api/v1/workspaces/:name/settings": {
    action: "workspace.settings",
    resource: param("workspace", "name"),
    workspaceName: (req) => req.params.name,
    details: bodyFacts("audit_content"),
  },
  "DELETE /api/v1/workspaces/:name": {
    action: "workspace.remove",
    resource: param("workspace", "name"),
    workspaceName: (req) => req.params.name,
  },
  "POST /api/v1/deployments": {
    action: "deployment.create",
    resource: (req, a) => `deployment:${(a?.name as string | undefined) ?? bodyField("name")(req) ?? ""}`,
    workspaceName: bodyField("workspace"),
    details: bodyFacts("model", "pool", "min_replicas", "max_replicas", "countries", "region", "gpu"),
  },
  "DELETE /api/v1/deployments/:name": { action: "deployment.remove", resource: param("deployment", "name") },
  "POST /api/v1/deployments/:name/pull": { action: "deployment.pull", resource: param("deployment", "name") },
  // Ollama's pull: a deployment's model fetched onto machines ahead of its first request.
  "POST /api/pull": {
    action: "deployment.pull",
    resource: (req) => `deployment:${bodyField("model")(req) ?? bodyField("name")(req) ?? ""}`,
  },
  "POST /api/v1/jobs": { action: "job.submit", resource: answered("job", "id") },
  "POST /api/v1/jobs/inputs": { action: "job.input", resource: answered("input", "id") },
  "POST /api/v1/jobs/:id/cancel": { action: "job.cancel", resource: param("job", "id") },
  // Signing in and out (routes/auth): the key or identity is the actor; the key itself is never kept.
  "POST /api/v1/auth/session": { action: "session.open", resource: null_ },
  "DELETE /api/v1/auth/session": { action: "session.close", resource: null_ },
};

/**
 * Mutating routes that are not management changes, and who records them instead: an agent's join
 * and keepalives are the machine's own calls (security events: machine.join, refused credentials),
 * recorded where its credential is checked; inference and job input calls are recorded at metadata
 * level through enqueue (fail open), never here.
 */
export const NOT_MANAGEMENT = new Set([
  "POST /api/v1/machines/join",
  "POST /api/v1/machine/register",
  "POST /api/v1/machine/keepalive",
  "POST /v1/chat/completions",
  "POST /v1/completions",
  "POST /v1/embeddings",
  "POST /api/chat",
  "POST /api/generate",
  "POST /api/embed",
  "POST /api/embeddings",
  "POST /api/show",
  // Signing in by single sign-on: each sign-in, refresh and refusal is recorded where the identity is
  // checked (auth/oidc/sign-in.ts: auth.login, auth.refresh), one event each; starting one changes nothing.
  "POST /api/v1/auth/device",
  "POST /api/v1/auth/device/token",
  "POST /api/v1/auth/token",
  "POST /api/v1/auth/refresh",
]);

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** "METHOD url" for each mutating method of a route: each must be audited or be in NOT_MANAGEMENT. */
export function managementKeys(route: Pick<RouteOptions, "method" | "url">): string[] {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  return methods.filter((m) => MUTATING.has(m)).map((m) => `${m} ${route.url}`);
}

const recorded = Symbol("audit recorded");
type Marked = FastifyRequest & { [recorded]?: true };

/**
 * Audits every management route registered after it. Before the handler, the log must be writable
 * (AuditLog.writable), or the change is refused with 503 and not made; after it, the one event with
 * the outcome the caller saw is written before the answer leaves. Why not one transaction with the
 * change: a change here is store writes and in-memory state (the registry, drains, the scheduler)
 * across many routes that no transaction spans; the probe makes a broken log (full disk, refused
 * writes) refuse changes, and the rare write that fails between probe and event is logged loudly and
 * counted (audit_events_lost_total), never silent.
 */
export function installManagementAudit(
  app: FastifyInstance,
  deps: { audit: AuditLog; store: Store; log: Logger; lost: Counter; routes?: string[] },
): void {
  const targets = new WeakMap<FastifyRequest, string>();
  const before =
    (spec: ManagementAction): preHandlerHookHandler =>
    async (req) => {
      // The workspace a route names is looked up before the handler runs: one it removes is gone after.
      const named = spec.workspaceName?.(req as Req);
      const target =
        named === undefined ? undefined : await deps.store.workspaces.byName(named).catch(() => undefined);
      if (target) {
        targets.set(req, target.id);
        deps.audit.nameWorkspace(target.id, target.name);
      }
      try {
        await deps.audit.writable();
      } catch (err) {
        // Nothing was changed, and no event can be written for the refusal either.
        (req as Marked)[recorded] = true;
        deps.log.error(
          { err },
          "the audit log cannot be written: management changes are refused until it can",
        );
        throw new Beta9Error(
          "unavailable",
          "the audit log cannot be written right now (check the gateway's database: disk space, permissions), so this change was not made; retry once it is fixed",
        );
      }
    };
  const write = async (
    req: FastifyRequest,
    reply: FastifyReply,
    spec: ManagementAction,
    payload: unknown,
  ) => {
    const marked = req as Marked;
    if (marked[recorded]) return;
    marked[recorded] = true;
    const r = req as Req;
    let answer: Record<string, unknown> | undefined;
    if (typeof payload === "string" && reply.statusCode < 400) {
      try {
        answer = JSON.parse(payload) as Record<string, unknown>;
      } catch {
        answer = undefined;
      }
    }
    const caller = authenticatedCaller(req);
    const named = spec.workspaceName?.(r);
    const target =
      targets.get(req) ??
      (named === undefined
        ? undefined
        : (await deps.store.workspaces.byName(named).catch(() => undefined))?.id);
    const status = reply.statusCode;
    const event: AuditInput = {
      actor: caller?.session?.identity
        ? { type: "identity", id: caller.session.identity }
        : caller
          ? { type: "key", id: caller.keyId }
          : { type: "anonymous", id: null },
      workspaceId: target ?? caller?.workspaceId ?? null,
      action: spec.action,
      resource: spec.resource(r, answer),
      outcome: status < 400 ? "ok" : status < 500 ? "refused" : "failed",
      requestId: req.id,
      details: { status, ...(spec.details?.(r) ?? {}) },
    };
    try {
      await deps.audit.record(event);
    } catch (err) {
      deps.lost.inc();
      deps.log.error(
        { err, action: event.action, resource: event.resource, request_id: req.id },
        "AUDIT EVENT LOST: a management change was made but its event could not be written",
      );
    }
  };
  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    deps.routes?.push(...methods.map((m) => `${m} ${route.url}`));
    for (const key of managementKeys(route)) {
      const spec = MANAGEMENT_ACTIONS[key];
      if (!spec) continue;
      const onSend: onSendHookHandler = async (req, reply, payload) => {
        await write(req, reply, spec, payload);
        return payload;
      };
      // A streamed answer (hijacked: no onSend) is recorded when it ends.
      const onResponse = async (req: FastifyRequest, reply: FastifyReply) =>
        write(req, reply, spec, undefined);
      route.preHandler = [...hooks(route.preHandler), before(spec)];
      route.onSend = [...hooks(route.onSend), onSend];
      route.onResponse = [...hooks(route.onResponse), onResponse];
    }
  });
}

function hooks<T>(h: T | T[] | undefined): T[] {
  if (h === undefined) return [];
  return Array.isArray(h) ? h : [h];
}
