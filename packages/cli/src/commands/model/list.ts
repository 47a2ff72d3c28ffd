import type { DeploymentView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { shortDuration } from "../../duration.ts";
import { ago, orDash } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

export function addModelList(model: Command, ctx: Context): void {
  model
    .command("list")
    .alias("ls")
    .description("list the models deployed in your workspace")
    .option("--workspace <name>", "another workspace's (a key of the default workspace)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { workspace?: string; json?: boolean }) => {
      const list = await ctx.client().deployments.list({ workspace: opts.workspace });
      if (opts.json) return ctx.printJson(list);
      if (list.deployments.length === 0) {
        return ctx.note("No models deployed. Deploy one with b9 model deploy NAME --source SOURCE.");
      }
      const now = ctx.now();
      ctx.print(
        table(
          ["NAME", "SOURCE", "ENGINE", "REPLICAS", "IDLE", "POOL", "GPU", "WHERE", "CREATED"],
          list.deployments.map((d) => [
            d.name,
            d.source,
            orDash(d.engine),
            `${d.min_replicas}-${d.max_replicas}`,
            shortDuration(d.idle_seconds),
            d.pool,
            d.gpu,
            where(d),
            ago(d.created_at, now),
          ]),
        ),
      );
    });
}

/** "DE,FR", "EU", "EU: DE,FR"; "-" when any country will do. */
export function where(d: Pick<DeploymentView, "countries" | "region">): string {
  const countries = d.countries.join(",");
  if (d.region && countries) return `${d.region.toUpperCase()}: ${countries}`;
  return orDash(d.region?.toUpperCase() ?? countries);
}
