import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addMachineRemove(machine: Command, ctx: Context): void {
  machine
    .command("remove")
    .alias("rm")
    .description("forget a machine and its credential; it must join again with a new token")
    .argument("<id>", "the machine's id, from b9 machine list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      await ctx.client().machines.remove(id);
      // The gateway answers 204 with no body; scripts still get something to parse.
      if (opts.json) return ctx.printJson({ id, removed: true });
      ctx.print(`Machine ${id} removed.`);
    });
}
