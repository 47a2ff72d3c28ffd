import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago } from "../../format.ts";
import { limitsText } from "../../limits.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

export function addWorkspaceList(workspace: Command, ctx: Context): void {
  workspace
    .command("list")
    .alias("ls")
    .description("list workspaces (the operator sees all; any other key its own)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().workspaces.list();
      if (opts.json) return ctx.printJson(list);
      const now = ctx.now();
      ctx.print(
        table(
          ["NAME", "ID", "LIMITS", "AUDIT CONTENT", "CREATED", "RUNS THE POOL"],
          list.workspaces.map((w) => [
            w.name,
            w.id,
            limitsText(w),
            w.audit_content ? "kept" : "-",
            ago(w.created_at, now),
            w.operator ? "yes" : "-",
          ]),
        ),
      );
    });
}
