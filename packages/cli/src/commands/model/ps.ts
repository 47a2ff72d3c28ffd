import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago, gib, orDash } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

export function addModelPs(model: Command, ctx: Context): void {
  model
    .command("ps")
    .description("replicas of your deployed models: where they run, their state, memory and load")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().replicas.list();
      if (opts.json) return ctx.printJson(list);
      if (list.replicas.length === 0) {
        return ctx.note(
          "No replicas running. A deployed model starts on its first request, or keep one with --min 1.",
        );
      }
      const now = ctx.now();
      ctx.print(
        table(
          ["MODEL", "MACHINE", "STATE", "ENGINE", "MEMORY", "IN FLIGHT", "LAST REQUEST"],
          list.replicas.map((r) => [
            r.deployment,
            orDash(r.machine_name),
            r.state,
            orDash(r.engine),
            r.memory_bytes === null ? "-" : gib(r.memory_bytes),
            String(r.outstanding),
            ago(r.last_request_at, now),
          ]),
        ),
      );
      const placed = list.replicas.filter((r) => r.placed_because);
      if (placed.length > 0) {
        ctx.print(["", "Why each replica runs where it does:"].join("\n"));
        for (const r of placed) ctx.print(`  ${r.deployment} on ${r.machine_name}: ${r.placed_because}`);
      }
    });
}
