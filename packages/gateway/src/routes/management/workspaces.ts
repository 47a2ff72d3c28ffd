import {
  Beta9Error,
  CreateWorkspace,
  SetResidency,
  SetWorkspaceLimits,
  SetWorkspaceSettings,
  WorkspaceList,
  WorkspaceRemoved,
  WorkspaceView,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { OPERATOR_WORKSPACE } from "../../auth/api-keys.ts";
import {
  callerResidency,
  liesWithin,
  parseResidency,
  refuseWhileJobsOutside,
  residencyColumns,
  residencyOf,
} from "../../auth/residency.ts";
import { newId } from "../../auth/secrets.ts";
import type { GatewayContext } from "../../context.ts";
import { workspaceView } from "../../views.ts";

/**
 * Workspaces: each has its own deployments, API keys and usage, and sees no other's. The operator
 * (an admin of `default`) makes them, gives each its first key with `b9 key create --workspace`, and
 * removes them with their deployments and keys.
 */
export const workspaceRoutes: FastifyPluginAsyncTypebox<
  GatewayContext & {
    /** Deployments went with a removed workspace: their replicas are unloaded. */
    onDeploymentsRemoved?: () => void;
  }
> = async (app, ctx) => {
  app.get("/api/v1/workspaces", { schema: { response: { 200: WorkspaceList } } }, async (req) => {
    const caller = await ctx.auth.authenticate(req, "read");
    // The operator sees every workspace; any other key sees its own only.
    const own = caller.operator ? undefined : await ctx.store.workspaces.byId(caller.workspaceId);
    const rows = caller.operator ? await ctx.store.workspaces.list() : own ? [own] : [];
    return { workspaces: rows.map(workspaceView) };
  });

  app.post(
    "/api/v1/workspaces",
    { schema: { body: CreateWorkspace, response: { 201: WorkspaceView } } },
    async (req, reply) => {
      await ctx.auth.operator(req, "create workspaces");
      const row = {
        id: newId("ws_"),
        name: req.body.name,
        created_at: Date.now(),
        rpm_limit: req.body.rpm_limit ?? null,
        tpm_limit: req.body.tpm_limit ?? null,
        max_jobs: req.body.max_jobs ?? null,
        gpu_hours_per_day: req.body.gpu_hours_per_day ?? null,
        ...residencyColumns(parseResidency(req.body)),
        audit_content_since: null,
      };
      if (!(await ctx.store.workspaces.create(row)))
        throw new Beta9Error(
          "conflict",
          `a workspace named ${row.name} exists already; list them with \`b9 workspace list\``,
        );
      ctx.log.info(
        { workspace_id: row.id, workspace: row.name, region: row.region, countries: row.countries },
        "workspace created",
      );
      return reply.status(201).send(workspaceView(row));
    },
  );

  app.post(
    "/api/v1/workspaces/:name/limits",
    {
      schema: {
        params: Type.Object({ name: Type.String({ maxLength: 64 }) }),
        body: SetWorkspaceLimits,
        response: { 200: WorkspaceView },
      },
    },
    async (req) => {
      await ctx.auth.operator(req, "change a workspace's limits");
      const workspace = await ctx.store.workspaces.byName(req.params.name);
      if (!workspace)
        throw new Beta9Error(
          "not_found",
          `no workspace named ${req.params.name}; list them with \`b9 workspace list\``,
        );
      const updated = await ctx.store.workspaces.setLimits(workspace.id, req.body);
      // Its keys are read again on their next request here; other replicas within their key cache's seconds.
      ctx.auth.forgetWorkspace(workspace.id);
      ctx.log.info(
        { workspace_id: workspace.id, workspace: workspace.name, ...req.body },
        "workspace limits changed",
      );
      return workspaceView(updated ?? workspace);
    },
  );

  app.post(
    "/api/v1/workspaces/:name/residency",
    {
      schema: {
        params: Type.Object({ name: Type.String({ maxLength: 64 }) }),
        body: SetResidency,
        response: { 200: WorkspaceView },
      },
    },
    async (req) => {
      await ctx.auth.operator(req, "change where a workspace's work may run");
      const workspace = await ctx.store.workspaces.byName(req.params.name);
      if (!workspace)
        throw new Beta9Error(
          "not_found",
          `no workspace named ${req.params.name}; list them with \`b9 workspace list\``,
        );
      const residency = parseResidency(req.body, residencyOf(workspace));
      // Its deployments keep replicas (min_replicas) where they may run: one that may run wider blocks the change.
      const allowed = callerResidency(residency, { region: null, countries: [] });
      const wider = (await ctx.store.deployments.list(workspace.id)).filter(
        (d) => !liesWithin(residencyOf(d), allowed),
      );
      if (wider.length > 0)
        throw new Beta9Error(
          "residency",
          `deployment ${wider.map((d) => d.name).join(", ")} may run outside ${allowed.text}; ` +
            "remove it (b9 model remove NAME) and deploy it again after the change, which then keeps it there",
        );
      await refuseWhileJobsOutside(ctx.store, workspace.id, allowed, "the workspace");
      const updated = await ctx.store.workspaces.setResidency(workspace.id, residencyColumns(residency));
      // Its keys carry its residency: read again on their next request here (other replicas within seconds).
      ctx.auth.forgetWorkspace(workspace.id);
      ctx.log.info(
        { workspace_id: workspace.id, workspace: workspace.name, ...residencyColumns(residency) },
        "workspace residency changed",
      );
      return workspaceView(updated ?? workspace);
    },
  );

  app.post(
    "/api/v1/workspaces/:name/settings",
    {
      schema: {
        params: Type.Object({ name: Type.String({ maxLength: 64 }) }),
        body: SetWorkspaceSettings,
        response: { 200: WorkspaceView },
      },
    },
    async (req) => {
      // The workspace's own admins decide what its audit log keeps (they answer for its data); the operator may too.
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "admin",
        req.params.name,
        "change another workspace's settings",
      );
      const on = req.body.audit_content;
      // Switching on again keeps the first time: the events since then may hold content.
      const since = on ? (workspace.audit_content_since ?? Date.now()) : null;
      const updated = await ctx.store.workspaces.setAuditContent(workspace.id, since);
      // Its keys carry the choice: read again on their next request here (other replicas within seconds).
      ctx.auth.forgetWorkspace(workspace.id);
      ctx.log.info(
        { workspace_id: workspace.id, workspace: workspace.name, audit_content: on },
        "workspace settings changed",
      );
      return workspaceView(updated ?? workspace);
    },
  );

  app.delete(
    "/api/v1/workspaces/:name",
    {
      schema: {
        params: Type.Object({ name: Type.String({ maxLength: 64 }) }),
        response: { 200: WorkspaceRemoved },
      },
    },
    async (req) => {
      await ctx.auth.operator(req, "remove workspaces");
      const { name } = req.params;
      if (name === OPERATOR_WORKSPACE)
        throw new Beta9Error(
          "bad_request",
          `the ${OPERATOR_WORKSPACE} workspace runs the pool; it cannot be removed`,
        );
      const workspace = await ctx.store.workspaces.byName(name);
      const remove = () => ctx.store.transaction((tx) => tx.workspaces.removeWithContents(workspace!.id));
      // A key or deployment made in it meanwhile fails the last delete (foreign key): once more takes it too.
      const removed = workspace ? await remove().catch(() => remove()) : undefined;
      if (!workspace || !removed)
        throw new Beta9Error("not_found", `no workspace named ${name}; list them with \`b9 workspace list\``);
      // Its keys stop working here now (other replicas within their key cache's few seconds).
      for (const id of removed.keys) ctx.auth.forget(id);
      if (removed.deployments.length > 0) ctx.onDeploymentsRemoved?.();
      ctx.log.info(
        {
          workspace_id: workspace.id,
          workspace: name,
          deployments: removed.deployments,
          keys: removed.keys.length,
        },
        "workspace removed",
      );
      return { name, deployments_removed: removed.deployments.length, keys_removed: removed.keys.length };
    },
  );
};
