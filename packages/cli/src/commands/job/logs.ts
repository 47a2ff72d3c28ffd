import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { Interrupted } from "../../user-error.ts";
import { wholeNumber } from "../model/deploy.ts";
import { followAgainHint, followLogs } from "./follow.ts";

interface Options {
  follow?: boolean;
  after?: number;
  json?: boolean;
}

export function addJobLogs(job: Command, ctx: Context): void {
  job
    .command("logs")
    .description("print a job's output: its stdout on stdout, its stderr on stderr")
    .argument("<id>", "the job's id, from b9 job list")
    .option("-f, --follow", "keep printing new lines until the job ends (Ctrl+C stops)")
    .option(
      "--after <n>",
      "only lines after line n (each line's number is its seq in --json)",
      wholeNumber(0, Number.MAX_SAFE_INTEGER),
    )
    .option("--json", "print each line as JSON (seq, at, attempt, stream, line), one a line")
    .action(async (id: string, opts: Options) => {
      const { job, lastSeq } = await followLogs(ctx, id, {
        after: opts.after ?? 0,
        json: opts.json === true,
        follow: opts.follow === true,
        explainWaiting: opts.json !== true,
      });
      if (!opts.follow) return;
      if (!job) {
        ctx.note(followAgainHint(id, lastSeq));
        throw new Interrupted();
      }
      if (!opts.json) ctx.note(`Job ${id} ended ${job.state}${job.reason ? ` (${job.reason})` : ""}.`);
    });
}
