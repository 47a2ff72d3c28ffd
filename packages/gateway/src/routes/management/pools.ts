import { Beta9Error, CreatePool, PoolList, PoolView } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { GatewayContext } from "../../context.ts";
import { poolView } from "../../views.ts";

export const poolRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.get("/api/v1/pools", { schema: { response: { 200: PoolList } } }, async (req) => {
    await ctx.auth.authenticate(req, "read");
    return { pools: (await ctx.store.pools.list()).map(poolView) };
  });

  app.post(
    "/api/v1/pools",
    { schema: { body: CreatePool, response: { 201: PoolView } } },
    async (req, reply) => {
      await ctx.auth.operator(req, "create pools");
      if (await ctx.store.pools.get(req.body.name)) {
        throw new Beta9Error("conflict", `pool ${req.body.name} exists already`);
      }
      const row = { name: req.body.name, description: req.body.description ?? "", created_at: Date.now() };
      await ctx.store.pools.insert(row);
      return reply.status(201).send(poolView({ ...row, machines: 0 }));
    },
  );
};
