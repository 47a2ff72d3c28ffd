import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addPoolCreate(pool: Command, ctx: Context): void {
  pool
    .command("create")
    .description("make a pool; machines join it with a join token made for it")
    .argument("<name>", "letters, digits, '.', '_' and '-'")
    .option("--description <text>", "a note for b9 pool list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { description?: string; json?: boolean }) => {
      const view = await ctx.client().pools.create({ name, description: opts.description });
      if (opts.json) return ctx.printJson(view);
      ctx.print(`Pool ${view.name} created. Add machines with b9 token create --pool ${view.name}.`);
    });
}
