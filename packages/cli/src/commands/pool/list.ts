import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago, orDash } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

export function addPoolList(pool: Command, ctx: Context): void {
  pool
    .command("list")
    .alias("ls")
    .description("list pools and how many machines each has")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().pools.list();
      if (opts.json) return ctx.printJson(list);
      if (list.pools.length === 0) return ctx.note("No pools. Make one with b9 pool create NAME.");
      const now = ctx.now();
      ctx.print(
        table(
          ["NAME", "MACHINES", "CREATED", "DESCRIPTION"],
          list.pools.map((p) => [p.name, String(p.machines), ago(p.created_at, now), orDash(p.description)]),
        ),
      );
    });
}
