import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addMachineDrain(machine: Command, ctx: Context): void {
  machine
    .command("drain")
    .description("cordon a machine and let its running work finish (before maintenance or removal)")
    .argument("<id>", "the machine's id, from b9 machine list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const m = await ctx.client().machines.drain(id);
      if (opts.json) return ctx.printJson(m);
      ctx.print(`Machine ${m.id} draining; status ${m.status}.`);
    });
}
