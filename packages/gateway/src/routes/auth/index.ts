import type { FastifyPluginAsync } from "fastify";
import { OidcProvider } from "../../auth/oidc/provider.ts";
import { SsoSignIn } from "../../auth/oidc/sign-in.ts";
import { Sessions } from "../../auth/sessions.ts";
import type { GatewayConfig } from "../../config.ts";
import type { GatewayContext } from "../../context.ts";
import { sessionRoutes } from "./session.ts";
import { ssoRoutes } from "./sso.ts";

/** Signing in: sessions with an API key, and single sign-on when an identity provider is configured. */
export const authRoutes: FastifyPluginAsync<GatewayContext & { config: GatewayConfig }> = async (
  app,
  opts,
) => {
  const { config, ...ctx } = opts;
  const sessions = new Sessions(ctx.store, { ttlMs: config.sessionTtlMs });
  // Ended sessions are kept a day (a support question about one can still name it), then forgotten.
  const prune = setInterval(() => {
    ctx.store.keys
      .pruneSessions(Date.now() - 86_400_000)
      .catch((err: unknown) => ctx.log.warn({ err }, "could not forget ended sessions"));
  }, 3_600_000);
  prune.unref();
  app.addHook("onClose", async () => clearInterval(prune));
  const secure = config.tls !== undefined;
  await app.register(sessionRoutes, { ...ctx, sessions, secure, issuer: config.oidc?.issuer ?? null });
  const signIn = config.oidc
    ? new SsoSignIn({
        provider: new OidcProvider(config.oidc, ctx.log),
        rules: config.oidc.rules,
        store: ctx.store,
        sessions,
        audit: ctx.audit,
        log: ctx.log,
        forget: (id) => ctx.auth.forget(id),
      })
    : undefined;
  await app.register(ssoRoutes, { ...ctx, signIn, secure });
};
