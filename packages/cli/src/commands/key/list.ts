import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago } from "../../format.ts";
import { limitsText } from "../../limits.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

export function addKeyList(key: Command, ctx: Context): void {
  key
    .command("list")
    .alias("ls")
    .description("list API keys (the keys themselves are never shown again)")
    .option("--workspace <name>", "another workspace's keys (a key of the default workspace)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { workspace?: string; json?: boolean }) => {
      const list = await ctx.client().keys.list({ workspace: opts.workspace });
      if (opts.json) return ctx.printJson(list);
      if (list.keys.length === 0) return ctx.note("No API keys.");
      const now = ctx.now();
      ctx.print(
        table(
          ["ID", "NAME", "WORKSPACE", "SCOPES", "LIMITS", "PREFIX", "STATE", "CREATED", "LAST USED"],
          list.keys.map((k) => [
            k.id,
            k.name,
            k.workspace,
            k.scopes.join(","),
            limitsText(k),
            k.prefix,
            k.revoked ? "revoked" : "active",
            ago(k.created_at, now),
            ago(k.last_used_at, now),
          ]),
        ),
      );
    });
}
