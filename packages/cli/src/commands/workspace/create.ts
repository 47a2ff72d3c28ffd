import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addWorkspaceCreate(workspace: Command, ctx: Context): void {
  workspace
    .command("create")
    .description("make a workspace: its own deployments, API keys and usage (the operator only)")
    .argument("<name>", "letters, digits, '.', '_' and '-'")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { json?: boolean }) => {
      const view = await ctx.client().workspaces.create({ name });
      if (opts.json) return ctx.printJson(view);
      ctx.print(
        `Workspace ${view.name} created. Give it a key with b9 key create NAME --workspace ${view.name} --scopes admin.`,
      );
    });
}
