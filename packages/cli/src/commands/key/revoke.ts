import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";

export function addKeyRevoke(key: Command, ctx: Context): void {
  key
    .command("revoke")
    .description("stop an API key from working, at once")
    .argument("<id>", "the key's id, from b9 key list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const view = await ctx.client().keys.revoke(id);
      if (opts.json) return ctx.printJson(view);
      ctx.print(`API key ${view.name} (${view.id}) revoked.`);
    });
}
