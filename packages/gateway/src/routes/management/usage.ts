import { Beta9Error, type UsageGroup, UsageQuery, UsageReport } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { GatewayContext } from "../../context.ts";
import type { Metering } from "../../metering/metering.ts";

const DAY_MS = 86_400_000;

/**
 * `GET /api/v1/usage`: the caller's workspace's inference requests, summed per model, key, day or
 * machine; the operator may name another workspace.
 */
export const usageRoutes: FastifyPluginAsyncTypebox<GatewayContext & { metering: Metering }> = async (
  app,
  ctx,
) => {
  app.get(
    "/api/v1/usage",
    { schema: { querystring: UsageQuery, response: { 200: UsageReport } } },
    async (req) => {
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "read",
        req.query.workspace,
        "read another workspace's usage",
      );
      const until = req.query.until === undefined ? Date.now() : time("until", req.query.until);
      const since = req.query.since === undefined ? until - DAY_MS : time("since", req.query.since);
      if (since >= until) {
        throw new Beta9Error("bad_request", "`since` must be before `until`");
      }
      const groupBy = req.query.group_by ?? "model";
      // Requests this gateway has finished but not yet written are counted too.
      await ctx.metering.flush();
      const rows = await ctx.store.usage.summarize({ workspaceId: workspace.id, since, until, groupBy });
      const keyNames =
        groupBy === "key"
          ? new Map((await ctx.store.keys.list({ workspaceId: workspace.id })).map((k) => [k.id, k.name]))
          : undefined;
      const machineName = (id: string) => (id === "" ? null : (ctx.registry.get(id)?.name ?? null));
      const groups: UsageGroup[] = rows.map((r) => ({
        ...r,
        group: groupBy === "day" ? new Date(Number(r.group)).toISOString().slice(0, 10) : r.group,
        ...(keyNames ? { key_name: keyNames.get(r.group) ?? null } : {}),
        ...(groupBy === "machine" ? { machine_name: machineName(r.group) } : {}),
      }));
      return {
        since: new Date(since).toISOString(),
        until: new Date(until).toISOString(),
        group_by: groupBy,
        workspace: workspace.name,
        groups,
      };
    },
  );
};

function time(name: string, text: string): number {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw new Beta9Error(
      "bad_request",
      `\`${name}\` is not a time: use ISO 8601, e.g. 2026-11-28T00:00:00Z or 2026-11-28`,
    );
  }
  return ms;
}
