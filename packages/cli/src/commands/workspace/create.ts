import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { positiveInt } from "../../limits.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { type ResidencyOptions, residencyBody, residencyOptions, residencyText } from "./residency.ts";

export function addWorkspaceCreate(workspace: Command, ctx: Context): void {
  const create = workspace
    .command("create")
    .description("make a workspace: its own deployments, API keys and usage (the operator only)")
    .argument("<name>", "letters, digits, '.', '_' and '-'")
    .option(
      "--rpm <n>",
      "requests per minute for all its keys together (default: no limit)",
      positiveInt("--rpm"),
    )
    .option(
      "--tpm <n>",
      "tokens per minute for all its keys together (default: no limit)",
      positiveInt("--tpm"),
    );
  residencyOptions(create, "its")
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: ResidencyOptions & { rpm?: number; tpm?: number; json?: boolean }) => {
      const view = await ctx.client().workspaces.create({
        name,
        ...(opts.rpm === undefined ? {} : { rpm_limit: opts.rpm }),
        ...(opts.tpm === undefined ? {} : { tpm_limit: opts.tpm }),
        ...residencyBody(opts),
      });
      if (opts.json) return ctx.printJson(view);
      const where = residencyText(view);
      ctx.print(
        `Workspace ${view.name} created${where === "anywhere" ? "" : `; its work runs only in ${where}`}. Give it a key with b9 key create NAME --workspace ${view.name} --scopes admin.`,
      );
    });
}
