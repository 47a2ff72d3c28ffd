import {
  Beta9Error,
  CreateDeployment,
  canonicalModelName,
  DeploymentList,
  DeploymentName,
  DeploymentView,
} from "@beta9/protocol";
import type { Deployment } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { GatewayContext } from "../../context.ts";
import { deploymentView } from "../../views.ts";

/** Defaults of a deployment that says nothing more than its name and source: scale to zero, one replica. */
export const DEPLOYMENT_DEFAULTS = {
  min_replicas: 0,
  max_replicas: 1,
  idle_seconds: 300,
  pool: "external",
  gpu: "any",
} as const;

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

/** Add a deployment to a workspace, with the defaults for what it leaves out; refusals explain themselves. */
export async function createDeployment(
  ctx: GatewayContext,
  workspaceId: string,
  b: CreateDeployment,
): Promise<Deployment> {
  const min = b.min_replicas ?? DEPLOYMENT_DEFAULTS.min_replicas;
  // A bare --min 2 means "at least two": the ceiling rises with it rather than refusing.
  const max = b.max_replicas ?? Math.max(DEPLOYMENT_DEFAULTS.max_replicas, min);
  if (max < min) {
    throw new Beta9Error(
      "bad_request",
      `max_replicas (${max}) is below min_replicas (${min}); raise max_replicas or lower min_replicas`,
    );
  }
  const pool = b.pool ?? DEPLOYMENT_DEFAULTS.pool;
  if (!(await ctx.store.pools.get(pool))) {
    throw new Beta9Error(
      "pool_unknown",
      `no pool named ${pool}; create it with \`b9 pool create ${pool}\` or leave --pool out`,
    );
  }
  // One canonical form (lowercase): "VICTIM" is the deployment "victim", refused if another has it.
  const name = canonicalModelName(b.name);
  const row: Deployment = {
    workspace_id: workspaceId,
    name,
    source: b.source,
    sha256: b.sha256 ?? null,
    engine: b.engine ?? null,
    min_replicas: min,
    max_replicas: max,
    idle_seconds: b.idle_seconds ?? DEPLOYMENT_DEFAULTS.idle_seconds,
    pool,
    gpu: b.gpu ?? DEPLOYMENT_DEFAULTS.gpu,
    min_vram_bytes: b.min_vram_bytes ?? null,
    countries: (b.countries ?? []).join(","),
    region: b.region ?? null,
    context_size: b.context_size ?? null,
    created_at: Date.now(),
  };
  // A model a machine's owner serves by hand is called by that name: a deployment would route to it.
  if (ctx.registry.servedByHand(name) && (await ctx.store.deployments.named([name])).length === 0) {
    throw new Beta9Error(
      "conflict",
      `a machine serves a model named ${name} that no deployment placed (started there by hand); deploy under another name, e.g. ${name}-2`,
    );
  }
  if (!(await ctx.store.deployments.insert(row))) {
    if (await ctx.store.deployments.get(workspaceId, name)) {
      throw new Beta9Error(
        "conflict",
        `a deployment named ${name} exists already in this workspace; remove it first with \`b9 model remove ${name}\``,
      );
    }
    // Machines serve a model under its name, so a name is one model for the whole pool (in any case).
    throw new Beta9Error(
      "conflict",
      `another workspace has deployed a model named ${name}, and a name means one model in the pool (names ignore case); deploy under another name, e.g. ${name}-2`,
    );
  }
  ctx.log.info(
    { workspace_id: row.workspace_id, model: row.name, pool, min_replicas: min, max_replicas: max },
    "deployment created",
  );
  return row;
}
