import { AuthConfig, Beta9Error, OpenSession, SessionView } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { actingAs } from "../../auth/api-keys.ts";
import { clearSessionCookie, type Sessions, sessionCookie, sessionSetCookie } from "../../auth/sessions.ts";
import type { GatewayContext } from "../../context.ts";

export interface SessionRouteOptions extends GatewayContext {
  sessions: Sessions;
  /** The gateway serves TLS: the cookie is marked Secure (so is it behind a trusted proxy that does). */
  secure: boolean;
  /** The identity provider, when single sign-on is on. */
  issuer: string | null;
}

/** The dashboard's sign-in with an API key, its session, and logout (issue 16's contract). */
export const sessionRoutes: FastifyPluginAsyncTypebox<SessionRouteOptions> = async (app, opts) => {
  app.get("/api/v1/auth/config", { schema: { response: { 200: AuthConfig } } }, async () => ({
    sso: opts.issuer !== null,
    issuer: opts.issuer,
  }));

  app.post(
    "/api/v1/auth/session",
    { schema: { body: OpenSession, response: { 200: SessionView } } },
    async (req, reply) => {
      const { secret, row, key } = await opts.sessions.openWithKey(req.body.api_key);
      // The login's audit event names the key that signed in (the key itself is never logged).
      actingAs(req, {
        keyId: key.id,
        workspaceId: key.workspace_id,
        scopes: [],
        limits: { rpm: null, tpm: null },
        workspaceLimits: { rpm: null, tpm: null },
        operator: false,
        residency: { countries: null, text: "anywhere" },
        auditContent: false,
      });
      opts.log.info({ session_id: row.id, key_id: key.id }, "dashboard session opened with an API key");
      reply.header(
        "set-cookie",
        sessionSetCookie(secret, row.expires_at ?? 0, opts.secure || req.protocol === "https"),
      );
      reply.header("cache-control", "no-store");
      return opts.sessions.view(row, secret);
    },
  );

  app.get("/api/v1/auth/session", { schema: { response: { 200: SessionView } } }, async (req, reply) => {
    // The contract's one answer for "not signed in" (the login page checks it), whatever the reason.
    const caller = await opts.auth.identify(req).catch((err: unknown) => {
      if (err instanceof Beta9Error && err.status === 401) throw new Beta9Error("unauthorized", err.message);
      throw err;
    });
    const row = caller.session && (await opts.store.keys.get(caller.session.id));
    // A bearer API key has no session to show: the dashboard signs in with POST.
    if (!caller.session || !row)
      throw new Beta9Error("unauthorized", "no session: sign in first (POST /api/v1/auth/session)");
    reply.header("cache-control", "no-store");
    return opts.sessions.view(row, caller.session.secret);
  });

  app.delete("/api/v1/auth/session", async (req, reply) => {
    // Logging out needs no scope, but a cookie's logout needs its CSRF token (no other site logs you out).
    const caller = await opts.auth.identify(req).catch((err: unknown) => {
      // A session already ended: clearing its cookie is all that is left to do.
      if (err instanceof Beta9Error && err.code === "session_expired") return undefined;
      throw err;
    });
    if (caller?.session) {
      await opts.sessions.revoke(caller.session.secret);
      opts.auth.forget(caller.session.id);
      opts.log.info({ session_id: caller.session.id }, "session ended (logout)");
    }
    if (sessionCookie(req) !== undefined)
      reply.header("set-cookie", clearSessionCookie(opts.secure || req.protocol === "https"));
    return reply.status(204).send();
  });
};
