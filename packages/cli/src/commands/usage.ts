import type { UsageGroupBy } from "@beta9/sdk";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { Context } from "../context.ts";
import { parseDuration } from "../duration.ts";
import { JSON_FLAG_HELP, table } from "../output.ts";

interface Options {
  since: string;
  until?: string;
  by: UsageGroupBy;
  workspace?: string;
  json?: boolean;
}

const HEADS: Record<UsageGroupBy, string[]> = {
  model: ["MODEL"],
  key: ["KEY", "NAME"],
  day: ["DAY"],
  machine: ["MACHINE", "NAME"],
  workspace: ["WORKSPACE", "NAME"],
};

export function addUsage(program: Command, ctx: Context): void {
  program
    .command("usage")
    .description(
      "inference usage of your workspace: requests, tokens, errors, latency, energy (Wh) and emissions (gCO2e)",
    )
    .option(
      "--since <when>",
      "from this long ago (30m, 24h, 7d) or from an ISO time or date",
      when("--since"),
      "24h",
    )
    .option("--until <when>", "up to this long ago or this ISO time or date (default: now)", when("--until"))
    .addOption(
      new Option(
        "--by <group>",
        "one row per model, key, day, machine (where it ran) or workspace (every workspace: the operator)",
      )
        .choices(["model", "key", "day", "machine", "workspace"])
        .default("model"),
    )
    .option("--workspace <name>", "another workspace's usage (a key of the default workspace)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      const now = ctx.now();
      const report = await ctx.client().usage.get({
        since: absolute(opts.since, now),
        until: opts.until === undefined ? undefined : absolute(opts.until, now),
        group_by: opts.by,
        workspace: opts.workspace,
      });
      if (opts.json) return ctx.printJson(report);
      if (report.groups.length === 0) {
        return ctx.note(`No inference requests from ${report.since} to ${report.until}.`);
      }
      ctx.print(
        table(
          [
            ...HEADS[opts.by],
            "REQUESTS",
            "PROMPT TOKENS",
            "COMPLETION TOKENS",
            "ERRORS",
            "P50",
            "P95",
            "WH",
            "GCO2E",
          ],
          report.groups.map((g) => [
            g.group || "-",
            ...(opts.by === "key" ? [g.key_name ?? "-"] : []),
            ...(opts.by === "machine" ? [g.machine_name ?? "-"] : []),
            ...(opts.by === "workspace" ? [g.workspace_name ?? "-"] : []),
            String(g.requests),
            String(g.prompt_tokens),
            String(g.completion_tokens),
            String(g.errors),
            ms(g.p50_latency_ms),
            ms(g.p95_latency_ms),
            // "-": nothing measured (unknown), never shown as 0.
            typeof g.energy_wh === "number" ? figure(g.energy_wh) : "-",
            typeof g.co2e_g === "number" ? figure(g.co2e_g) : "-",
          ]),
        ),
      );
    });
}

/** Energy and carbon figures: four significant digits (an answer's Wh is a few thousandths). */
export function figure(n: number): string {
  return n === 0 ? "0" : String(Number(n.toPrecision(4)));
}

/** Checks a --since/--until value: a duration ("24h") or an ISO 8601 time or date. */
export function when(flag: string): (value: string) => string {
  return (value) => {
    const v = value.trim();
    if (isIso(v)) return v;
    try {
      parseDuration(v);
      return v;
    } catch {
      throw new InvalidArgumentError(
        `${flag} takes a duration such as 30m, 24h or 7d, or an ISO time or date such as 2026-03-01`,
      );
    }
  };
}

/** A duration means that long before now; an ISO time or date is passed on as it is. */
export function absolute(value: string, now: number): string {
  return isIso(value) ? value : new Date(now - parseDuration(value) * 1000).toISOString();
}

function isIso(v: string): boolean {
  return /^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(Date.parse(v));
}

/** Milliseconds as people read them: 850ms, 1.2s, 45s. */
function ms(n: number): string {
  if (n < 1000) return `${n}ms`;
  if (n < 10_000) return `${(n / 1000).toFixed(1)}s`;
  return `${Math.round(n / 1000)}s`;
}
