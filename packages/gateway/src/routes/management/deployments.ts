import {
  Beta9Error,
  CreateDeployment,
  DeploymentList,
  DeploymentName,
  DeploymentView,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { GatewayContext } from "../../context.ts";
import { createDeployment } from "../../deployments/create.ts";
import { deploymentView } from "../../views.ts";

// Fastify hands the path parameter over URL-decoded: "llama3.2%3A1b" arrives as "llama3.2:1b".
export const NameParams = Type.Object({ name: DeploymentName });
/** `?workspace=NAME`: another workspace's, for a key of the operator's workspace. */
const WorkspaceQuery = Type.Object(
  { workspace: Type.Optional(Type.String({ maxLength: 64 })) },
  { additionalProperties: false },
);

/**
 * The models a workspace keeps servable. Every route acts on the caller's workspace only: another
 * workspace's deployment is not found, never shown.
 */
export const deploymentRoutes: FastifyPluginAsyncTypebox<
  GatewayContext & {
    /** A deployment was removed: its replicas are unloaded. */
    onRemoved?: (name: string) => void;
  }
> = async (app, ctx) => {
  app.post(
    "/api/v1/deployments",
    { schema: { body: CreateDeployment, response: { 201: DeploymentView } } },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "admin");
      const row = await createDeployment(ctx, caller.workspaceId, req.body);
      return reply.status(201).send(deploymentView(row, await ctx.store.workspaces.byId(caller.workspaceId)));
    },
  );

  app.get(
    "/api/v1/deployments",
    { schema: { querystring: WorkspaceQuery, response: { 200: DeploymentList } } },
    async (req) => {
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "read",
        req.query.workspace,
        "see another workspace's deployments",
      );
      const rows = await ctx.store.deployments.list(workspace.id);
      return { deployments: rows.map((d) => deploymentView(d, workspace)) };
    },
  );

  app.get(
    "/api/v1/deployments/:name",
    { schema: { params: NameParams, querystring: WorkspaceQuery, response: { 200: DeploymentView } } },
    async (req) => {
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "read",
        req.query.workspace,
        "see another workspace's deployments",
      );
      const row = await ctx.store.deployments.get(workspace.id, req.params.name);
      if (!row) throw deploymentNotFound(req.params.name);
      return deploymentView(row, workspace);
    },
  );

  app.delete(
    "/api/v1/deployments/:name",
    { schema: { params: NameParams, querystring: WorkspaceQuery } },
    async (req, reply) => {
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "admin",
        req.query.workspace,
        "remove another workspace's deployments",
      );
      if (!(await ctx.store.deployments.remove(workspace.id, req.params.name))) {
        throw deploymentNotFound(req.params.name);
      }
      ctx.log.info({ workspace_id: workspace.id, model: req.params.name }, "deployment removed");
      ctx.onRemoved?.(req.params.name);
      return reply.status(204).send();
    },
  );
};

export function deploymentNotFound(name: string): Beta9Error {
  return new Beta9Error(
    "not_found",
    `no deployment named ${name} in this workspace; list them with \`b9 model list\``,
  );
}
