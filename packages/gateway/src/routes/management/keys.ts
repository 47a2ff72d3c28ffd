import {
  ApiKeyList,
  ApiKeyView,
  Beta9Error,
  CreateApiKey,
  SetApiKeyLimits,
  TOKEN_PREFIX,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { hashSecret, newId, newSecret } from "../../auth/secrets.ts";
import type { GatewayContext } from "../../context.ts";
import { apiKeyView } from "../../views.ts";

export const keyRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  app.post(
    "/api/v1/keys",
    { schema: { body: CreateApiKey, response: { 201: ApiKeyView } } },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "admin");
      let workspace = await ctx.store.workspaces.byId(caller.workspaceId);
      if (req.body.workspace !== undefined && req.body.workspace !== workspace?.name) {
        await ctx.auth.operator(req, "create keys for another workspace");
        workspace = await ctx.store.workspaces.byName(req.body.workspace);
        if (!workspace)
          throw new Beta9Error(
            "not_found",
            `no workspace named ${req.body.workspace}; create it with \`b9 workspace create ${req.body.workspace}\``,
          );
      }
      if (!workspace)
        throw new Beta9Error("not_found", "this key's workspace is gone; ask the pool's operator");
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
      };
      await ctx.store.keys.insert(row);
      ctx.log.info(
        { key_id: row.id, scopes: row.scopes, rpm_limit: row.rpm_limit, tpm_limit: row.tpm_limit },
        "API key created",
      );
      return reply.status(201).send(apiKeyView(row, workspace, secret));
    },
  );

  app.get("/api/v1/keys", { schema: { response: { 200: ApiKeyList } } }, async (req) => {
    const caller = await ctx.auth.authenticate(req, "read");
    const workspace = await ctx.store.workspaces.byId(caller.workspaceId);
    const keys = await ctx.store.keys.list({ workspaceId: caller.workspaceId });
    return { keys: keys.map((k) => apiKeyView(k, workspace)) };
  });

  /** A key of the caller's workspace, or not_found (another workspace's keys are not there for it). */
  const ownKey = async (workspaceId: string, id: string) => {
    const existing = await ctx.store.keys.get(id);
    if (!existing || existing.workspace_id !== workspaceId)
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
      const existing = await ownKey(caller.workspaceId, req.params.id);
      const k = await ctx.store.keys.setLimits(existing.id, req.body);
      // Read again on its next request here; other replicas within their key cache's few seconds.
      ctx.auth.forget(existing.id);
      ctx.log.info({ key_id: existing.id, ...req.body }, "API key limits changed");
      return apiKeyView(k ?? existing, await ctx.store.workspaces.byId(existing.workspace_id));
    },
  );

  app.delete(
    "/api/v1/keys/:id",
    {
      schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: ApiKeyView } },
    },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, "admin");
      const existing = await ownKey(caller.workspaceId, req.params.id);
      const k = await ctx.store.keys.revoke(existing.id, Date.now());
      ctx.auth.forget(existing.id);
      ctx.log.info({ key_id: existing.id }, "API key revoked");
      return apiKeyView(k ?? existing, await ctx.store.workspaces.byId(existing.workspace_id));
    },
  );
};
