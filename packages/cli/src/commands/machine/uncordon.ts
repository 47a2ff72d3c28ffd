import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addMachineUncordon(machine: Command, ctx: Context): void {
  machine
    .command("uncordon")
    .description("let the scheduler use a cordoned or drained machine again")
    .argument("<id>", "the machine's id, from b9 machine list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const m = await ctx.client().machines.uncordon(id);
      if (opts.json) return ctx.printJson(m);
      ctx.print(`Machine ${m.id} uncordoned; status ${m.status}.`);
    });
}
