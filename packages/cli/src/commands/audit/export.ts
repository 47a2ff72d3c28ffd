import { writeFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import type { Context } from "../../context.ts";
import { absolute, when } from "../usage.ts";

export function addAuditExport(audit: Command, ctx: Context): void {
  audit
    .command("export")
    .description(
      "the audit log of a period as JSON lines: events, signed checkpoints and the public keys, to keep and verify offline (b9 audit verify --file)",
    )
    .addOption(new Option("--format <format>", "the file's format").choices(["jsonl"]).default("jsonl"))
    .option(
      "--since <when>",
      "from this long ago (30m, 24h, 7d) or from an ISO time or date",
      when("--since"),
    )
    .option("--until <when>", "up to this long ago or this ISO time or date", when("--until"))
    .option("--output <file>", "write it to this file instead of printing it")
    .action(async (opts: { since?: string; until?: string; output?: string }) => {
      const now = ctx.now();
      const text = await ctx.client().audit.export({
        since: opts.since === undefined ? undefined : absolute(opts.since, now),
        until: opts.until === undefined ? undefined : absolute(opts.until, now),
      });
      if (!opts.output) return ctx.print(text);
      await writeFile(opts.output, text, { mode: 0o600 });
      ctx.note(`Wrote ${text.trim().split("\n").length} lines to ${opts.output}.`);
    });
}
