import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { positiveInt } from "../../limits.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addWorkspaceCreate(workspace: Command, ctx: Context): void {
  workspace
    .command("create")
    .description("make a workspace: its own deployments, API keys and usage (the operator only)")
    .argument("<name>", "letters, digits, '.', '_' and '-'")
    .option(
      "--rpm <n>",
      "requests per minute for all its keys together (default: no limit)",
      positiveInt("--rpm"),
    )
    .option(
      "--tpm <n>",
      "tokens per minute for all its keys together (default: no limit)",
      positiveInt("--tpm"),
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { rpm?: number; tpm?: number; json?: boolean }) => {
      const view = await ctx.client().workspaces.create({
        name,
        ...(opts.rpm === undefined ? {} : { rpm_limit: opts.rpm }),
        ...(opts.tpm === undefined ? {} : { tpm_limit: opts.tpm }),
      });
      if (opts.json) return ctx.printJson(view);
      ctx.print(
        `Workspace ${view.name} created. Give it a key with b9 key create NAME --workspace ${view.name} --scopes admin.`,
      );
    });
}
