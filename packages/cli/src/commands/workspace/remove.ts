import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";

export function addWorkspaceRemove(workspace: Command, ctx: Context): void {
  workspace
    .command("remove")
    .alias("rm")
    .description("remove a workspace with its deployments and API keys (the operator only; not default)")
    .argument("<name>", "the workspace, from b9 workspace list")
    .option("--yes", "remove it: its keys stop working and its models are unloaded")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { yes?: boolean; json?: boolean }) => {
      if (!opts.yes)
        throw new UserError(
          `this removes workspace ${name} with every deployment and API key in it`,
          `run b9 workspace remove ${name} --yes to go ahead`,
        );
      const removed = await ctx.client().workspaces.remove(name);
      if (opts.json) return ctx.printJson(removed);
      ctx.print(
        `Workspace ${removed.name} removed, with ${plural(removed.deployments_removed, "deployment")} and ${plural(removed.keys_removed, "API key")}.`,
      );
    });
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}
