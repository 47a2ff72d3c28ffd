import {
  Beta9Error,
  CarbonReport,
  CarbonReportQuery,
  type CarbonRow,
  type UsageGroup,
  UsageQuery,
  UsageReport,
} from "@beta9/protocol";
import type { FootprintSummary } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
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
      const groupBy = req.query.group_by ?? "model";
      const workspace = await scope(req, groupBy === "workspace", req.query.workspace, "usage");
      const { since, until } = window(req.query);
      // Requests this gateway has finished but not yet written are counted too.
      await ctx.metering.flush();
      const rows = await ctx.store.usage.summarize({ workspaceId: workspace?.id, since, until, groupBy });
      const workspaceNames = groupBy === "workspace" ? await namesOfWorkspaces() : undefined;
      const keyNames =
        groupBy === "key" && workspace
          ? new Map((await ctx.store.keys.list({ workspaceId: workspace.id })).map((k) => [k.id, k.name]))
          : undefined;
      const machineName = (id: string) => (id === "" ? null : (ctx.registry.get(id)?.name ?? null));
      const groups: UsageGroup[] = rows.map((r) => ({
        ...r,
        group: groupBy === "day" ? new Date(Number(r.group)).toISOString().slice(0, 10) : r.group,
        ...(keyNames ? { key_name: keyNames.get(r.group) ?? null } : {}),
        ...(groupBy === "machine" ? { machine_name: machineName(r.group) } : {}),
        ...(workspaceNames ? { workspace_name: workspaceNames.get(r.group) ?? null } : {}),
      }));
      return {
        since: new Date(since).toISOString(),
        until: new Date(until).toISOString(),
        group_by: groupBy,
        workspace: workspace?.name ?? "*",
        groups,
      };
    },
  );

  /**
   * `GET /api/v1/carbon/report`: the footprint of answers and jobs per model, key, machine or
   * workspace, with SCI per 1,000 tokens and per job and the share of gCO2e each confidence covers.
   * The totals are the sums of the rows.
   */
  app.get(
    "/api/v1/carbon/report",
    { schema: { querystring: CarbonReportQuery, response: { 200: CarbonReport } } },
    async (req) => {
      const by = req.query.by ?? "model";
      const workspace = await scope(req, by === "workspace", req.query.workspace, "carbon report");
      const { since, until } = window(req.query);
      await ctx.metering.flush();
      const q = { workspaceId: workspace?.id, since, until, groupBy: by };
      const [answers, jobs] = await Promise.all([
        ctx.store.usage.footprints(q),
        ctx.store.usage.jobFootprints(q),
      ]);
      const names = await namer(by, workspace?.id);
      const rows = [
        ...answers.map((r) => carbonRow(r, "answers", names)),
        ...jobs.map((r) => carbonRow(r, "jobs", names)),
      ];
      return {
        since: new Date(since).toISOString(),
        until: new Date(until).toISOString(),
        by,
        workspace: workspace?.name ?? null,
        basis: "location" as const,
        rows,
        totals: totalsOf(rows),
      };
    },
  );

  /** The workspace a report is of; undefined (every workspace) when grouped by workspace, which only the operator may. */
  async function scope(req: FastifyRequest, every: boolean, named: string | undefined, what: string) {
    if (!every) return ctx.auth.actingWorkspace(req, "read", named, `read another workspace's ${what}`);
    await ctx.auth.operator(req, `read every workspace's ${what}`, "read");
    if (named !== undefined)
      throw new Beta9Error(
        "bad_request",
        "grouped by workspace, a report covers every workspace: leave out `workspace`",
      );
    return undefined;
  }

  async function namesOfWorkspaces(): Promise<Map<string, string>> {
    return new Map((await ctx.store.workspaces.list()).map((w) => [w.id, w.name]));
  }

  /** The names of the groups' keys, machines or workspaces. */
  async function namer(
    by: CarbonReport["by"],
    workspaceId: string | undefined,
  ): Promise<(id: string) => string | null> {
    if (by === "workspace") {
      const m = await namesOfWorkspaces();
      return (id) => m.get(id) ?? null;
    }
    if (by === "key" && workspaceId !== undefined) {
      const m = new Map((await ctx.store.keys.list({ workspaceId })).map((k) => [k.id, k.name]));
      return (id) => m.get(id) ?? null;
    }
    if (by === "machine") return (id) => (id === "" ? null : (ctx.registry.get(id)?.name ?? null));
    return () => null;
  }
};

function carbonRow(
  r: FootprintSummary,
  kind: CarbonRow["kind"],
  name: (id: string) => string | null,
): CarbonRow {
  return {
    group: r.group,
    name: r.group === "jobs" && kind === "jobs" ? null : name(r.group),
    kind,
    count: r.count,
    measured: r.measured,
    tokens: r.tokens,
    measured_tokens: r.measured_tokens,
    energy_wh: r.energy_wh,
    co2e_g: r.co2e_g,
    sci_g_per_1k_tokens:
      kind === "answers" && r.measured_tokens > 0 ? (r.co2e_g / r.measured_tokens) * 1000 : null,
    sci_g_per_job: kind === "jobs" && r.measured > 0 ? r.co2e_g / r.measured : null,
    co2e_by_confidence: r.co2e_by_confidence,
  };
}

/** The totals are the sums of the rows (what the report shows adds up). */
function totalsOf(rows: readonly CarbonRow[]): CarbonReport["totals"] {
  const sum = (f: (r: CarbonRow) => number, of: readonly CarbonRow[] = rows) =>
    of.reduce((a, r) => a + f(r), 0);
  const answers = rows.filter((r) => r.kind === "answers");
  const jobs = rows.filter((r) => r.kind === "jobs");
  const co2e = sum((r) => r.co2e_g);
  const byConfidence = {
    high: sum((r) => r.co2e_by_confidence.high),
    medium: sum((r) => r.co2e_by_confidence.medium),
    low: sum((r) => r.co2e_by_confidence.low),
  };
  // SCI over the answers with a footprint: their gCO2e per 1,000 of their tokens.
  const measuredTokens = sum((r) => r.measured_tokens, answers);
  const answersCo2e = sum((r) => r.co2e_g, answers);
  const jobsMeasured = sum((r) => r.measured, jobs);
  const share = (x: number) => (co2e > 0 ? x / co2e : 0);
  return {
    answers: sum((r) => r.count, answers),
    jobs: sum((r) => r.count, jobs),
    energy_wh: sum((r) => r.energy_wh),
    co2e_g: co2e,
    sci_g_per_1k_tokens: measuredTokens > 0 ? (answersCo2e / measuredTokens) * 1000 : null,
    sci_g_per_job: jobsMeasured > 0 ? sum((r) => r.co2e_g, jobs) / jobsMeasured : null,
    co2e_by_confidence: byConfidence,
    coverage: {
      high: share(byConfidence.high),
      medium: share(byConfidence.medium),
      low: share(byConfidence.low),
    },
  };
}

/** [since, until) from the query: default the 24 hours before now. */
function window(q: { since?: string | undefined; until?: string | undefined }): {
  since: number;
  until: number;
} {
  const until = q.until === undefined ? Date.now() : time("until", q.until);
  const since = q.since === undefined ? until - DAY_MS : time("since", q.since);
  if (since >= until) throw new Beta9Error("bad_request", "`since` must be before `until`");
  return { since, until };
}

/** An ISO 8601 time or date given as `name`, in ms; a 400 that shows the form otherwise. */
export function time(name: string, text: string): number {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms)) {
    throw new Beta9Error(
      "bad_request",
      `\`${name}\` is not a time: use ISO 8601, e.g. 2026-11-28T00:00:00Z or 2026-11-28`,
    );
  }
  return ms;
}
