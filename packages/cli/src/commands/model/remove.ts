import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addModelRemove(model: Command, ctx: Context): void {
  model
    .command("remove")
    .alias("rm")
    .description("stop keeping a model servable in your workspace")
    .argument("<name>", "the model's name, from b9 model list")
    .option("--workspace <name>", "another workspace's (a key of the default workspace)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { workspace?: string; json?: boolean }) => {
      await ctx.client().deployments.remove(name, { workspace: opts.workspace });
      // The gateway answers 204 with no body; scripts still get something to parse.
      if (opts.json) return ctx.printJson({ name, removed: true });
      ctx.print(`Model ${name} removed.`);
    });
}
