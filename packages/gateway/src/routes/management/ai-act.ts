import { AiActReport, AiActReportQuery, Beta9Error } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { GatewayContext } from "../../context.ts";
import type { Metering } from "../../metering/metering.ts";
import { type AiActSources, aiActReport } from "../../reports/ai-act.ts";
import { time } from "./usage.ts";

/**
 * `GET /api/v1/reports/ai-act`: a workspace's EU AI Act documentation pack over [from, to), as JSON
 * (the CLI renders Markdown, HTML and PDF from it). The workspace's own admin key, or the operator's.
 */
export const aiActRoutes: FastifyPluginAsyncTypebox<
  GatewayContext & { metering: Metering } & Omit<AiActSources, "store" | "machineName">
> = async (app, ctx) => {
  app.get(
    "/api/v1/reports/ai-act",
    { schema: { querystring: AiActReportQuery, response: { 200: AiActReport } } },
    async (req) => {
      const q = req.query;
      const since = time("from", q.from);
      const until = time("to", q.to);
      if (since >= until)
        throw new Beta9Error("bad_request", `\`from\` (${q.from}) must be before \`to\` (${q.to})`);
      const workspace = await ctx.auth.actingWorkspace(
        req,
        "admin",
        q.workspace,
        "build another workspace's AI Act report",
      );
      // Requests this gateway has finished but not yet written are counted too.
      await ctx.metering.flush();
      return aiActReport(
        {
          store: ctx.store,
          machineName: (id) => ctx.registry.get(id)?.name ?? null,
          verifyAudit: ctx.verifyAudit,
          securityEvents: ctx.securityEvents,
          deployers: ctx.deployers,
        },
        workspace,
        since,
        until,
      );
    },
  );
};
