import type { CarbonReport, CarbonReportBy, CarbonRow } from "@beta9/sdk";
import { type Command, Option } from "commander";
import type { Context } from "../../context.ts";
import { table } from "../../output.ts";
import { absolute, figure, when } from "../usage.ts";

interface Options {
  from: string;
  to?: string;
  by: CarbonReportBy;
  workspace?: string;
  format: "table" | "json" | "csv" | "md";
}

const HEAD = ["GROUP", "NAME", "KIND", "COUNT", "MEASURED", "TOKENS", "WH", "GCO2E", "G/1K TOKENS", "G/JOB"];

export function addCarbonReport(carbon: Command, ctx: Context): void {
  carbon
    .command("report")
    .description(
      "energy and emissions of answers and jobs: SCI per 1,000 tokens and per job (location-based, embodied emissions not counted), and how much of the total each confidence level covers",
    )
    .option(
      "--from <when>",
      "from this long ago (30m, 24h, 7d) or an ISO time or date",
      when("--from"),
      "24h",
    )
    .option("--to <when>", "up to this long ago or this ISO time or date (default: now)", when("--to"))
    .addOption(
      new Option(
        "--by <group>",
        "one row per model, key, machine or workspace (every workspace: the operator)",
      )
        .choices(["model", "key", "machine", "workspace"])
        .default("model"),
    )
    .option("--workspace <name>", "another workspace's report (a key of the default workspace)")
    .addOption(
      new Option("--format <format>", "how to print it")
        .choices(["table", "json", "csv", "md"])
        .default("table"),
    )
    .action(async (opts: Options) => {
      const now = ctx.now();
      const report = await ctx.client().usage.carbon({
        since: absolute(opts.from, now),
        until: opts.to === undefined ? undefined : absolute(opts.to, now),
        by: opts.by,
        workspace: opts.workspace,
      });
      if (opts.format === "json") return ctx.printJson(report);
      const rows = [...report.rows.map(cells), totalCells(report)];
      if (opts.format === "csv")
        return ctx.print([HEAD, ...rows].map((r) => r.map(csvCell).join(",")).join("\n"));
      if (opts.format === "md") {
        const line = (r: string[]) => `| ${r.map((c) => c.replaceAll("|", "\\|")).join(" | ")} |`;
        return ctx.print(
          [line(HEAD), line(HEAD.map(() => "---")), ...rows.map(line), "", coverage(report)].join("\n"),
        );
      }
      if (report.rows.length === 0)
        return ctx.note(`No answers or jobs from ${report.since} to ${report.until}.`);
      ctx.print(`${table(HEAD, rows)}\n\n${coverage(report)}`);
    });
}

function cells(r: CarbonRow): string[] {
  return [
    r.group || "-",
    r.name ?? "-",
    r.kind,
    String(r.count),
    String(r.measured),
    String(r.tokens),
    figure(r.energy_wh),
    figure(r.co2e_g),
    r.sci_g_per_1k_tokens === null ? "-" : figure(r.sci_g_per_1k_tokens),
    r.sci_g_per_job === null ? "-" : figure(r.sci_g_per_job),
  ];
}

function totalCells(report: CarbonReport): string[] {
  const t = report.totals;
  return [
    "TOTAL",
    "",
    "",
    String(t.answers + t.jobs),
    String(report.rows.reduce((a, r) => a + r.measured, 0)),
    String(report.rows.reduce((a, r) => a + r.tokens, 0)),
    figure(t.energy_wh),
    figure(t.co2e_g),
    t.sci_g_per_1k_tokens === null ? "-" : figure(t.sci_g_per_1k_tokens),
    t.sci_g_per_job === null ? "-" : figure(t.sci_g_per_job),
  ];
}

/** The share of the gCO2e each confidence level covers, and what "measured" leaves out. */
function coverage(report: CarbonReport): string {
  const c = report.totals.coverage;
  const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
  return `gCO2e by confidence: high ${pct(c.high)}, medium ${pct(c.medium)}, low ${pct(c.low)} (${report.basis}-based; answers and jobs without a measured energy are left out, not counted as zero)`;
}

function csvCell(v: string): string {
  return /[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}
