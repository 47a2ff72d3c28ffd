import { Beta9Error, CreateWorkspace, WorkspaceList, WorkspaceView } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { OPERATOR_WORKSPACE } from "../../auth/api-keys.ts";
import { newId } from "../../auth/secrets.ts";
import type { GatewayContext } from "../../context.ts";
import { workspaceView } from "../../views.ts";

/**
 * Workspaces: each has its own deployments, API keys and usage, and sees no other's. The operator
 * (an admin of `default`) makes them and gives each its first key with `b9 key create --workspace`.
 */
export const workspaceRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.get("/api/v1/workspaces", { schema: { response: { 200: WorkspaceList } } }, async (req) => {
    const caller = await ctx.auth.authenticate(req, "read");
    const own = await ctx.store.workspaces.byId(caller.workspaceId);
    // The operator sees every workspace; any other key sees its own only.
    const rows = own?.name === OPERATOR_WORKSPACE ? await ctx.store.workspaces.list() : own ? [own] : [];
    return { workspaces: rows.map(workspaceView) };
  });

  app.post(
    "/api/v1/workspaces",
    { schema: { body: CreateWorkspace, response: { 201: WorkspaceView } } },
    async (req, reply) => {
      await ctx.auth.operator(req, "create workspaces");
      const row = { id: newId("ws_"), name: req.body.name, created_at: Date.now() };
      if (!(await ctx.store.workspaces.create(row)))
        throw new Beta9Error(
          "conflict",
          `a workspace named ${row.name} exists already; list them with \`b9 workspace list\``,
        );
      ctx.log.info({ workspace_id: row.id, workspace: row.name }, "workspace created");
      return reply.status(201).send(workspaceView(row));
    },
  );
};
