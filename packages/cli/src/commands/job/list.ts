import { JOB_STATES, type JobState, type JobView } from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { ago, orDash } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";
import { wholeNumber } from "../model/deploy.ts";
import { commandLine } from "./describe.ts";

interface Options {
  state?: JobState[];
  limit?: number;
  after?: string;
  json?: boolean;
}

export function addJobList(job: Command, ctx: Context): void {
  job
    .command("list")
    .alias("ls")
    .description("list the workspace's jobs, newest first")
    .option(
      "--state <states>",
      `only jobs in these states, comma-separated: ${JOB_STATES.join(", ")}`,
      states,
    )
    .option("--limit <n>", "at most this many (1 to 500, default 100)", wholeNumber(1, 500))
    .option("--after <id>", "the page after this job (the last id of the previous page)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      const list = await ctx.client().jobs.list({ state: opts.state, limit: opts.limit, after: opts.after });
      if (opts.json) return ctx.printJson(list);
      if (list.jobs.length === 0) {
        return ctx.note("No jobs found. Run one with b9 job run -- COMMAND.");
      }
      const now = ctx.now();
      ctx.print(
        table(
          ["ID", "STATE", "PRIORITY", "ATTEMPT", "MACHINE", "CREATED", "COMMAND"],
          list.jobs.map((j) => [
            j.id,
            j.state,
            String(j.priority),
            attempts(j),
            orDash(j.machine_id),
            ago(j.created_at, now),
            commandLine(j.spec.command),
          ]),
        ),
      );
      if (list.next) ctx.note(`More: b9 job list --after ${list.next}`);
    });
}

/** "1/3": the attempt running (or last run) of those allowed. */
export function attempts(j: Pick<JobView, "attempt" | "max_retries">): string {
  return `${j.attempt}/${j.max_retries + 1}`;
}

/** Upper-cased, so people may spare the shift key. */
function states(value: string): JobState[] {
  const wanted = value
    .split(",")
    .map((s) => s.trim().toUpperCase())
    .filter(Boolean);
  if (wanted.length === 0)
    throw new InvalidArgumentError(`name at least one state: ${JOB_STATES.join(", ")}`);
  for (const s of wanted) {
    if (!(JOB_STATES as readonly string[]).includes(s))
      throw new InvalidArgumentError(`unknown state "${s}"; choose from ${JOB_STATES.join(", ")}`);
  }
  return wanted as JobState[];
}
