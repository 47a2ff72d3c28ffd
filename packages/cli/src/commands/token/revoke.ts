import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addTokenRevoke(token: Command, ctx: Context): void {
  token
    .command("revoke")
    .description("stop a join token from working; machines that joined with it stay")
    .argument("<id>", "the token's id, from b9 token list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const view = await ctx.client().tokens.revoke(id);
      if (opts.json) return ctx.printJson(view);
      ctx.print(`Join token ${view.id} (pool ${view.pool}) revoked.`);
    });
}
