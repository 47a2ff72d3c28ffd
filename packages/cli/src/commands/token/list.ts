import type { JoinTokenView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago, orDash, relative } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

export function addTokenList(token: Command, ctx: Context): void {
  token
    .command("list")
    .alias("ls")
    .description("list join tokens (their secrets are never shown again)")
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { json?: boolean }) => {
      const list = await ctx.client().tokens.list();
      if (opts.json) return ctx.printJson(list);
      if (list.tokens.length === 0)
        return ctx.note("No join tokens. Make one with b9 token create --pool POOL.");
      const now = ctx.now();
      ctx.print(
        table(
          ["ID", "POOL", "STATE", "USES LEFT", "EXPIRES", "CREATED", "DESCRIPTION"],
          list.tokens.map((t) => [
            t.id,
            t.pool,
            state(t, now),
            `${t.uses_left}/${t.uses_total}`,
            relative(t.expires_at, now),
            ago(t.created_at, now),
            orDash(t.description),
          ]),
        ),
      );
    });
}

function state(t: JoinTokenView, now: number): string {
  if (t.revoked) return "revoked";
  if (t.uses_left <= 0) return "used up";
  if (Date.parse(t.expires_at) <= now) return "expired";
  return "active";
}
