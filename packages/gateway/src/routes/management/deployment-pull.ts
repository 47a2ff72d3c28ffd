import { toErrorReply } from "@beta9/http";
import { Beta9Error, type DeploymentPullEvent } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { narrowDeployment } from "../../auth/residency.ts";
import type { GatewayContext } from "../../context.ts";
import { clientGone } from "../../http/client-gone.ts";
import { sendNdjson } from "../../http/ndjson-reply.ts";
import { deploymentSpec } from "../../scheduler/deployment-spec.ts";
import { type PrePullDeps, prePull } from "../../scheduler/pre-pull.ts";
import { deploymentNotFound, NameParams } from "./deployments.ts";

/**
 * POST /api/v1/deployments/:name/pull: the deployment's model onto the machines that will serve it,
 * with the agents' progress as NDJSON (the shape is DeploymentPullEvent in protocol). The inference
 * scope suffices: a first request would pull it all the same.
 */
export const deploymentPullRoutes: FastifyPluginAsyncTypebox<
  GatewayContext & { prePull: PrePullDeps }
> = async (app, ctx) => {
  app.post(
    "/api/v1/deployments/:name/pull",
    // No body is needed; one sent (`{}`) is ignored.
    { schema: { params: NameParams } },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "inference");
      const row = await ctx.store.deployments.get(caller.workspaceId, req.params.name);
      if (!row) throw deploymentNotFound(req.params.name);
      // Pulled only where the caller's key may run it (its workspace's countries narrowed by the key's).
      const dep = narrowDeployment(deploymentSpec(row), caller.residency);
      if (!dep)
        throw new Beta9Error(
          "residency",
          `${row.name} may run only outside ${caller.residency.text}, where this key's work may run`,
        );
      const client = clientGone(reply);
      try {
        await sendNdjson(
          reply,
          prePull(ctx.prePull, dep, client.signal),
          (err): DeploymentPullEvent => ({ status: "error", error: toErrorReply(err).body.error }),
        );
      } finally {
        client.dispose();
      }
    },
  );
};
