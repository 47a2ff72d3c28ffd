import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { type Command, Option } from "commander";
import type { Context } from "../../context.ts";
import { UserError } from "../../user-error.ts";
import { absolute, when } from "../usage.ts";
import { aiActDocument } from "./ai-act-document.ts";
import { html, markdown } from "./ai-act-render.ts";
import { printHtml } from "./chromium.ts";

interface Options {
  workspace: string;
  from: string;
  to?: string;
  format: "md" | "html" | "json" | "pdf";
  output?: string;
}

export function addReportAiAct(report: Command, ctx: Context): void {
  report
    .command("ai-act")
    .description(
      "an EU AI Act documentation pack for a workspace, from recorded facts: model inventory with sha256 and licence, usage and energy, incidents, the audit log's verification, transparency, and what it does not cover (an admin key of the workspace, or the operator's)",
    )
    .requiredOption("--workspace <name>", "the workspace the pack is of")
    .option("--from <when>", "from this long ago (30d) or an ISO time or date", when("--from"), "30d")
    .option("--to <when>", "up to this long ago or this ISO time or date (default: now)", when("--to"))
    .addOption(
      new Option("--format <format>", "Markdown, HTML, JSON, or PDF (headless Chromium)")
        .choices(["md", "html", "json", "pdf"])
        .default("md"),
    )
    .option("--output <file>", "write it to this file (a PDF needs one) instead of printing it")
    .action(async (opts: Options) => {
      const now = ctx.now();
      const from = absolute(opts.from, now);
      const to = opts.to === undefined ? new Date(now).toISOString() : absolute(opts.to, now);
      if (Date.parse(from) >= Date.parse(to))
        throw new UserError(
          `--from (${from}) must be before --to (${to})`,
          "swap them, or give a longer period",
        );
      if (opts.format === "pdf" && !opts.output)
        throw new UserError("a PDF is written to a file", "add --output report.pdf");
      const report = await ctx.client().reports.aiAct({ workspace: opts.workspace, from, to });
      if (opts.format === "pdf") {
        const out = resolve(opts.output!);
        await printHtml(html(aiActDocument(report)), out, "pdf");
        return ctx.note(`wrote ${out}`);
      }
      const text =
        opts.format === "json"
          ? `${JSON.stringify(report, null, 2)}\n`
          : opts.format === "html"
            ? html(aiActDocument(report))
            : markdown(aiActDocument(report));
      if (!opts.output) return ctx.print(text.trimEnd());
      await writeFile(opts.output, text);
      ctx.note(`wrote ${resolve(opts.output)}`);
    });
}
