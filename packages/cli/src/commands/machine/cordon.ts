import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addMachineCordon(machine: Command, ctx: Context): void {
  machine
    .command("cordon")
    .description("stop scheduling new work on a machine; running work goes on")
    .argument("<id>", "the machine's id, from b9 machine list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const m = await ctx.client().machines.cordon(id);
      if (opts.json) return ctx.printJson(m);
      ctx.print(`Machine ${m.id} cordoned; status ${m.status}.`);
    });
}
