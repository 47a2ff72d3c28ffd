import type { SetWorkspaceLimits } from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { limitOrNone, limitsText, limitValue } from "../../limits.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";

interface Options {
  rpm?: number | "none";
  tpm?: number | "none";
  maxJobs?: number | "none";
  gpuHours?: number | "none";
  json?: boolean;
}

export function addWorkspaceLimit(workspace: Command, ctx: Context): void {
  workspace
    .command("limit")
    .description(
      "change the per-minute limits of all a workspace's keys together, and its jobs at once (the operator only)",
    )
    .argument("<name>", "the workspace, from b9 workspace list")
    .option("--rpm <n|none>", "requests per minute, or none", limitOrNone("--rpm"))
    .option("--tpm <n|none>", "tokens (prompt + completion) per minute, or none", limitOrNone("--tpm"))
    .option(
      "--max-jobs <n|none>",
      "jobs on machines at once (the rest wait queued), or none",
      limitOrNone("--max-jobs"),
    )
    .option("--gpu-hours <n|none>", "GPU-hours its jobs may use in any 24 hours, or none", gpuHoursOrNone)
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: Options) => {
      const body: SetWorkspaceLimits = {
        ...(opts.rpm === undefined ? {} : { rpm_limit: limitValue(opts.rpm) }),
        ...(opts.tpm === undefined ? {} : { tpm_limit: limitValue(opts.tpm) }),
        ...(opts.maxJobs === undefined ? {} : { max_jobs: limitValue(opts.maxJobs) }),
        ...(opts.gpuHours === undefined ? {} : { gpu_hours_per_day: limitValue(opts.gpuHours) }),
      };
      if (Object.keys(body).length === 0)
        throw new UserError(
          "say which limit to change",
          `e.g. b9 workspace limit ${name} --rpm 600 --tpm none --max-jobs 4`,
        );
      const view = await ctx.client().workspaces.setLimits(name, body);
      if (opts.json) return ctx.printJson(view);
      const limits = limitsText(view);
      const jobs =
        (view.max_jobs == null ? "" : ` At most ${view.max_jobs} of its jobs run at once.`) +
        (view.gpu_hours_per_day == null
          ? ""
          : ` Its jobs may use ${view.gpu_hours_per_day} GPU-hours a day.`);
      ctx.print(
        `Workspace ${view.name}: ${limits === "-" ? "no limits" : `${limits} for all its keys together`}.${jobs}`,
      );
    });
}

/** A positive number of hours (fractions allowed), or "none". */
function gpuHoursOrNone(value: string): number | "none" {
  if (value === "none") return "none";
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0))
    throw new InvalidArgumentError("--gpu-hours takes a number of hours above 0, or none");
  return n;
}
