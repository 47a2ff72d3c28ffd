import { ReplicaList } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { GatewayContext } from "../../context.ts";
import type { Router } from "../../router/router.ts";
import type { ReplicaManager } from "../../scheduler/replicas.ts";

/**
 * `b9 model ps`: the replicas of the caller's workspace's deployments, where they run and how busy.
 * Inference keys may read it too, so a client waiting on a cold start can show what is happening.
 */
export const replicaRoutes: FastifyPluginAsyncTypebox<
  GatewayContext & { router: Router; replicas: ReplicaManager }
> = async (app, ctx) => {
  app.get("/api/v1/replicas", { schema: { response: { 200: ReplicaList } } }, async (req) => {
    const caller = await ctx.auth.authenticate(req, ["read", "inference"]);
    const names = new Set((await ctx.store.deployments.list(caller.workspaceId)).map((d) => d.name));
    return { replicas: ctx.replicas.replicas(names, (id) => ctx.router.outstanding(id)) };
  });
};
