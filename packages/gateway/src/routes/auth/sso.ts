import { Beta9Error, DevicePoll, DeviceStart, RefreshSession, SessionTokens } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { SsoSignIn } from "../../auth/oidc/sign-in.ts";
import { sessionSetCookie } from "../../auth/sessions.ts";
import type { GatewayContext } from "../../context.ts";

export interface SsoRouteOptions extends GatewayContext {
  /** Undefined without --oidc-issuer: the routes exist (one API everywhere) and say so. */
  signIn: SsoSignIn | undefined;
  secure: boolean;
}

/** The login's pending checks ride in a cookie of their own, sent back only to the callback. */
const PENDING_COOKIE = "b9_sso";
const PENDING_TTL_S = 600;
/** The dashboard's login page, where failures land with a code it explains. */
const LOGIN_PAGE = "/ui/login";

interface Pending {
  state: string;
  verifier: string;
  nonce: string;
  returnTo: string;
}

/** A path under /ui/ on this gateway, or /ui/: never another site (no open redirect). */
export function safeReturnTo(raw: unknown): string {
  if (typeof raw !== "string" || raw.length > 2048) return "/ui/";
  const base = "http://gateway.invalid";
  let u: URL;
  try {
    u = new URL(raw, base);
  } catch {
    return "/ui/";
  }
  // "//evil.example", "/\\evil", "https://evil" all resolve to another origin; "/ui/../x" normalises away.
  if (u.origin !== base || !raw.startsWith("/ui/") || !u.pathname.startsWith("/ui/")) return "/ui/";
  return `${u.pathname}${u.search}${u.hash}`;
}

function cookieValue(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function readPending(req: FastifyRequest): Pending | undefined {
  const raw = cookieValue(req, PENDING_COOKIE);
  if (!raw) return undefined;
  try {
    const p = JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) as Partial<Pending>;
    if (typeof p.state !== "string" || typeof p.verifier !== "string" || typeof p.nonce !== "string")
      return undefined;
    return { state: p.state, verifier: p.verifier, nonce: p.nonce, returnTo: safeReturnTo(p.returnTo) };
  } catch {
    return undefined;
  }
}

/**
 * Single sign-on: the dashboard's authorization code flow with PKCE (/ui/auth/sso → provider →
 * /ui/auth/callback), and the CLI's device flow and refresh, with the gateway as the provider's client.
 */
export const ssoRoutes: FastifyPluginAsyncTypebox<SsoRouteOptions> = async (app, opts) => {
  // Secure when served over TLS, by the gateway or by a trusted proxy in front of it.
  const secure = (req: FastifyRequest) => opts.secure || req.protocol === "https";
  const sso = (): SsoSignIn => {
    if (opts.signIn) return opts.signIn;
    throw new Beta9Error(
      "sso_disabled",
      "single sign-on is not set up on this gateway (b9gateway --oidc-issuer …); sign in with an API key",
    );
  };
  // Lax, not Strict: the provider's redirect back is a navigation from another site.
  const pendingCookie = (req: FastifyRequest, value: string, maxAge: number) =>
    `${PENDING_COOKIE}=${value}; HttpOnly; Path=/ui/auth; ${secure(req) ? "Secure; " : ""}SameSite=Lax; Max-Age=${maxAge}`;
  const callbackUrl = (req: FastifyRequest) => `${req.protocol}://${req.host}/ui/auth/callback`;
  const fail = (req: FastifyRequest, reply: FastifyReply, code: string) =>
    reply
      .header("set-cookie", pendingCookie(req, "", 0))
      .redirect(`${LOGIN_PAGE}?error=${encodeURIComponent(code)}`, 302);
  const at = (req: FastifyRequest) => ({ requestId: req.id, ip: req.ip });

  app.get(
    "/ui/auth/sso",
    {
      schema: {
        querystring: Type.Object({ return_to: Type.Optional(Type.String({ maxLength: 2048 })) }),
      },
    },
    async (req, reply) => {
      let start: Awaited<ReturnType<SsoSignIn["provider"]["authorizationUrl"]>>;
      try {
        start = await sso().provider.authorizationUrl(callbackUrl(req));
      } catch (err) {
        opts.log.warn({ err: String(err) }, "single sign-on could not start");
        return fail(req, reply, "sso_failed");
      }
      const pending: Pending = {
        state: start.state,
        verifier: start.verifier,
        nonce: start.nonce,
        returnTo: safeReturnTo(req.query.return_to),
      };
      const value = Buffer.from(JSON.stringify(pending)).toString("base64url");
      reply.header("set-cookie", pendingCookie(req, value, PENDING_TTL_S));
      reply.header("cache-control", "no-store");
      return reply.redirect(start.url, 302);
    },
  );

  app.get("/ui/auth/callback", async (req, reply) => {
    const pending = readPending(req);
    const query = req.query as Record<string, unknown>;
    // No pending login in this browser, or another one's: expired, replayed, or forged.
    if (!pending || query.state !== pending.state) return fail(req, reply, "sso_state");
    if (typeof query.error === "string") {
      opts.log.warn({ error: query.error }, "the identity provider refused the sign-in");
      return fail(req, reply, "sso_failed");
    }
    const current = new URL(req.url, callbackUrl(req));
    try {
      const vouched = await sso().provider.callback(current, pending);
      const { secret, row } = await sso().openDashboard(vouched, at(req));
      opts.log.info(
        { session_id: row.id, workspace_id: row.workspace_id },
        "dashboard session opened by single sign-on",
      );
      reply.header("set-cookie", [
        pendingCookie(req, "", 0),
        sessionSetCookie(secret, row.expires_at ?? 0, secure(req)),
      ]);
      reply.header("cache-control", "no-store");
      return reply.redirect(pending.returnTo, 302);
    } catch (err) {
      const code =
        err instanceof Beta9Error && ["sso_refused", "sso_state"].includes(err.code)
          ? err.code
          : "sso_failed";
      return fail(req, reply, code);
    }
  });

  app.post("/api/v1/auth/device", { schema: { response: { 200: DeviceStart } } }, async () =>
    sso().provider.startDevice(),
  );

  app.post(
    "/api/v1/auth/device/token",
    { schema: { body: DevicePoll, response: { 200: SessionTokens } } },
    async (req) => sso().openCli(await sso().provider.pollDevice(req.body.device_code), "cli", at(req)),
  );

  app.post(
    "/api/v1/auth/token",
    {
      schema: {
        body: Type.Object(
          { id_token: Type.String({ minLength: 1, maxLength: 16_384 }) },
          { additionalProperties: false },
        ),
        response: { 200: SessionTokens },
      },
    },
    async (req) => sso().openCli(await sso().provider.verifyIdToken(req.body.id_token), "token", at(req)),
  );

  app.post(
    "/api/v1/auth/refresh",
    { schema: { body: RefreshSession, response: { 200: SessionTokens } } },
    async (req) => sso().refresh(req.body.refresh_token, at(req)),
  );
};
