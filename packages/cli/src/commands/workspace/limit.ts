import type { SetWorkspaceLimits } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { limitOrNone, limitsText, limitValue } from "../../limits.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";

export function addWorkspaceLimit(workspace: Command, ctx: Context): void {
  workspace
    .command("limit")
    .description("change the per-minute limits of all a workspace's keys together (the operator only)")
    .argument("<name>", "the workspace, from b9 workspace list")
    .option("--rpm <n|none>", "requests per minute, or none", limitOrNone("--rpm"))
    .option("--tpm <n|none>", "tokens (prompt + completion) per minute, or none", limitOrNone("--tpm"))
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { rpm?: number | "none"; tpm?: number | "none"; json?: boolean }) => {
      const body: SetWorkspaceLimits = {
        ...(opts.rpm === undefined ? {} : { rpm_limit: limitValue(opts.rpm) }),
        ...(opts.tpm === undefined ? {} : { tpm_limit: limitValue(opts.tpm) }),
      };
      if (Object.keys(body).length === 0)
        throw new UserError(
          "say which limit to change",
          `e.g. b9 workspace limit ${name} --rpm 600 --tpm none`,
        );
      const view = await ctx.client().workspaces.setLimits(name, body);
      if (opts.json) return ctx.printJson(view);
      const limits = limitsText(view);
      ctx.print(
        `Workspace ${view.name}: ${limits === "-" ? "no limits" : `${limits} for all its keys together`}.`,
      );
    });
}
