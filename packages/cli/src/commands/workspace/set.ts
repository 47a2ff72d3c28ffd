import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";
import { type ResidencyOptions, residencyBody, residencyOptions, residencyText } from "./residency.ts";

export function addWorkspaceSet(workspace: Command, ctx: Context): void {
  residencyOptions(
    workspace
      .command("set")
      .description(
        "set where a workspace's work may run (the operator only); its requests are refused rather than served elsewhere",
      )
      .argument("<name>", "the workspace, from b9 workspace list"),
    "its",
    true,
  )
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: ResidencyOptions & { json?: boolean }) => {
      const body = residencyBody(opts);
      if (Object.keys(body).length === 0)
        throw new UserError("say where its work may run", `e.g. b9 workspace set ${name} --region eu`);
      const view = await ctx.client().workspaces.setResidency(name, body);
      if (opts.json) return ctx.printJson(view);
      const where = residencyText(view);
      ctx.print(`Workspace ${view.name} runs ${where === "anywhere" ? "anywhere" : `only in ${where}`}.`);
    });
}
