import type { DeploymentView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { shortDuration } from "../../duration.ts";
import { ago } from "../../format.ts";
import { details, JSON_FLAG_HELP } from "../../output.ts";
import { formatSize } from "../../size.ts";
import { replicas } from "./deploy.ts";

export function addModelShow(model: Command, ctx: Context): void {
  model
    .command("show")
    .description("show one deployed model: source, replicas, placement")
    .argument("<name>", "the model's name, from b9 model list")
    .option("--workspace <name>", "another workspace's (a key of the default workspace)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: { workspace?: string; json?: boolean }) => {
      const d = await ctx.client().deployments.get(name, { workspace: opts.workspace });
      if (opts.json) return ctx.printJson(d);
      ctx.print(details(describe(d, ctx.now())));
    });
}

function describe(d: DeploymentView, now: number): Array<[string, string]> {
  const quantize: Array<[string, string]> = d.quantize
    ? [["Quantize", `${d.quantize} (converted once, copied to the other machines)`]]
    : [];
  return [
    ["Name", d.name],
    ["Workspace", d.workspace],
    ["Source", d.source],
    ["SHA-256", d.sha256 ?? "not pinned"],
    ...quantize,
    ["Engine", d.engine ?? "the machine's choice"],
    ["Replicas", `${replicas(d)}${d.min_replicas === 0 ? " (scales to zero)" : ""}`],
    ["Idle unload", `after ${shortDuration(d.idle_seconds)} (${d.idle_seconds}s)`],
    ["Pool", d.pool],
    ["GPU", d.gpu],
    ["Min VRAM", d.min_vram_bytes === null ? "-" : formatSize(d.min_vram_bytes)],
    ["Countries", d.countries.length === 0 ? "any" : d.countries.join(", ")],
    ["Region", d.region?.toUpperCase() ?? "any"],
    ["Placement", d.prefer === "low-carbon" ? "prefers low carbon" : "least loaded"],
    ["Context", d.context_size === null ? "the engine's default" : `${d.context_size} tokens`],
    ["Created", `${d.created_at} (${ago(d.created_at, now)})`],
  ];
}
