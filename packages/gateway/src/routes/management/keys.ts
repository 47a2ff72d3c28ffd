import {
  ApiKeyList,
  ApiKeyView,
  Beta9Error,
  CreateApiKey,
  SetApiKeyLimits,
  SetResidency,
  TOKEN_PREFIX,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { Caller } from "../../auth/api-keys.ts";
import {
  callerResidency,
  parseResidency,
  refuseWhileJobsOutside,
  refuseWider,
  residencyColumns,
  residencyOf,
} from "../../auth/residency.ts";
import { hashSecret, newId, newSecret } from "../../auth/secrets.ts";
import type { GatewayContext } from "../../context.ts";
import { apiKeyView } from "../../views.ts";

export const keyRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.post(
    "/api/v1/keys",
    { schema: { body: CreateApiKey, response: { 201: ApiKeyView } } },
    async (req, reply) => {
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "admin",
        req.body.workspace,
        "create keys for another workspace",
      );
      const residency = parseResidency(req.body);
      refuseWider(residency, residencyOf(workspace), workspace.name);
      const secret = newSecret(TOKEN_PREFIX.apiKey);
      const row = {
        id: newId("key_"),
        name: req.body.name,
        workspace_id: workspace.id,
        scopes: req.body.scopes.join(","),
        key_hash: hashSecret(secret),
        prefix: secret.slice(0, 10),
        revoked_at: null,
        created_at: Date.now(),
        last_used_at: null,
        rpm_limit: req.body.rpm_limit ?? null,
        tpm_limit: req.body.tpm_limit ?? null,
        ...residencyColumns(residency),
      };
      await ctx.store.keys.insert(row);
      ctx.log.info(
        {
          key_id: row.id,
          scopes: row.scopes,
          rpm_limit: row.rpm_limit,
          tpm_limit: row.tpm_limit,
          region: row.region,
          countries: row.countries,
        },
        "API key created",
      );
      // A session's columns are the store's defaults for a key: the view is of the row as stored.
      const stored = await ctx.store.keys.get(row.id);
      if (!stored) throw new Beta9Error("internal", "the key was not stored; create it again");
      return reply.status(201).send(apiKeyView(stored, workspace, secret));
    },
  );

  app.get(
    "/api/v1/keys",
    {
      schema: {
        querystring: Type.Object(
          { workspace: Type.Optional(Type.String({ maxLength: 64 })) },
          { additionalProperties: false },
        ),
        response: { 200: ApiKeyList },
      },
    },
    async (req) => {
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "read",
        req.query.workspace,
        "list another workspace's keys",
      );
      const keys = await ctx.store.keys.list({ workspaceId: workspace.id });
      return { keys: keys.map((k) => apiKeyView(k, workspace)) };
    },
  );

  /**
   * A key of the caller's workspace, or of any for the pool's operator; else not_found (another
   * workspace's keys are not there for a team).
   */
  const ownKey = async (caller: Caller, id: string) => {
    const existing = await ctx.store.keys.get(id);
    if (!existing || (existing.workspace_id !== caller.workspaceId && !caller.operator))
      throw new Beta9Error("not_found", `no API key ${id}; list them with \`b9 key list\``);
    return existing;
  };

  app.post(
    "/api/v1/keys/:id/limits",
    {
      schema: {
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        body: SetApiKeyLimits,
        response: { 200: ApiKeyView },
      },
    },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, "admin");
      const existing = await ownKey(caller, req.params.id);
      const k = await ctx.store.keys.setLimits(existing.id, req.body);
      // Read again on its next request here; other replicas within their key cache's few seconds.
      ctx.auth.forget(existing.id);
      ctx.log.info({ key_id: existing.id, ...req.body }, "API key limits changed");
      return apiKeyView(k ?? existing, await ctx.store.workspaces.byId(existing.workspace_id));
    },
  );

  app.post(
    "/api/v1/keys/:id/residency",
    {
      schema: {
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        body: SetResidency,
        response: { 200: ApiKeyView },
      },
    },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, "admin");
      const existing = await ownKey(caller, req.params.id);
      const workspace = await ctx.store.workspaces.byId(existing.workspace_id);
      if (!workspace)
        throw new Beta9Error("not_found", `no API key ${existing.id}; list them with \`b9 key list\``);
      const residency = parseResidency(req.body, residencyOf(existing));
      refuseWider(residency, residencyOf(workspace), workspace.name);
      const allowed = callerResidency(residencyOf(workspace), residency);
      await refuseWhileJobsOutside(ctx.store, workspace.id, allowed, "the key", existing.id);
      const k = await ctx.store.keys.setResidency(existing.id, residencyColumns(residency));
      // Read again on its next request here; other replicas within their key cache's few seconds.
      ctx.auth.forget(existing.id);
      ctx.log.info({ key_id: existing.id, ...residencyColumns(residency) }, "API key residency changed");
      return apiKeyView(k ?? existing, workspace);
    },
  );

  app.delete(
    "/api/v1/keys/:id",
    {
      schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: ApiKeyView } },
    },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, "admin");
      const existing = await ownKey(caller, req.params.id);
      const k = await ctx.store.keys.revoke(existing.id, Date.now());
      ctx.auth.forget(existing.id);
      ctx.log.info({ key_id: existing.id }, "API key revoked");
      return apiKeyView(k ?? existing, await ctx.store.workspaces.byId(existing.workspace_id));
    },
  );
};
