import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addJobCancel(job: Command, ctx: Context): void {
  job
    .command("cancel")
    .description("stop a job: a running one gets SIGTERM, then SIGKILL after a grace period")
    .argument("<id>", "the job's id, from b9 job list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const j = await ctx.client().jobs.cancel(id);
      if (opts.json) return ctx.printJson(j);
      const before = j.events?.at(-2)?.state;
      ctx.print(`Job ${j.id} cancelled${before ? ` (it was ${before})` : ""}; state ${j.state}.`);
    });
}
