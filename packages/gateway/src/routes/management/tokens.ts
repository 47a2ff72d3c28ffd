import {
  Beta9Error,
  CreateJoinToken,
  JoinTokenList,
  JoinTokenView,
  parseCountry,
  TOKEN_PREFIX,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { hashSecret, newId, newSecret } from "../../auth/secrets.ts";
import type { GatewayContext } from "../../context.ts";
import { joinTokenView } from "../../views.ts";

const DEFAULT_TTL_SECONDS = 3600;

export const tokenRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.post(
    "/api/v1/tokens",
    { schema: { body: CreateJoinToken, response: { 201: JoinTokenView } } },
    async (req, reply) => {
      await ctx.auth.operator(req, "create join tokens");
      const pool = req.body.pool ?? "external";
      if (!(await ctx.store.pools.get(pool))) {
        throw new Beta9Error(
          "pool_unknown",
          `no pool named ${pool}; create it with \`b9 pool create ${pool}\``,
        );
      }
      // Bound to every machine joining with it: the operator says where a machine is, not the machine.
      const country = req.body.country === undefined ? null : parseCountry(req.body.country);
      const secret = newSecret(TOKEN_PREFIX.join);
      const now = Date.now();
      const uses = req.body.uses ?? 1;
      const row = {
        id: newId("jt_"),
        token_hash: hashSecret(secret),
        pool,
        description: req.body.description ?? "",
        expires_at: now + (req.body.ttl_seconds ?? DEFAULT_TTL_SECONDS) * 1000,
        uses_total: uses,
        uses_left: uses,
        revoked_at: null,
        created_at: now,
        country,
      };
      await ctx.store.tokens.insert(row);
      ctx.log.info({ token_id: row.id, pool, uses, country }, "join token created");
      return reply.status(201).send(joinTokenView(row, secret));
    },
  );

  app.get("/api/v1/tokens", { schema: { response: { 200: JoinTokenList } } }, async (req) => {
    await ctx.auth.operator(req, "list join tokens", "read");
    return { tokens: (await ctx.store.tokens.list()).map((t) => joinTokenView(t)) };
  });

  app.delete(
    "/api/v1/tokens/:id",
    {
      schema: {
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: { 200: JoinTokenView },
      },
    },
    async (req) => {
      await ctx.auth.operator(req, "revoke join tokens");
      const t = await ctx.store.tokens.revoke(req.params.id, Date.now());
      if (!t)
        throw new Beta9Error("not_found", `no join token ${req.params.id}; list them with \`b9 token list\``);
      ctx.log.info({ token_id: t.id }, "join token revoked");
      return joinTokenView(t);
    },
  );
};
