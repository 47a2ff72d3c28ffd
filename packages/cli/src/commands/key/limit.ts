import type { SetApiKeyLimits } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { limitOrNone, limitsText, limitValue } from "../../limits.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";

export function addKeyLimit(key: Command, ctx: Context): void {
  key
    .command("limit")
    .description("change an API key's per-minute limits; its next request is counted under them")
    .argument("<id>", "the key's id, from b9 key list")
    .option("--rpm <n|none>", "requests per minute, or none", limitOrNone("--rpm"))
    .option("--tpm <n|none>", "tokens (prompt + completion) per minute, or none", limitOrNone("--tpm"))
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { rpm?: number | "none"; tpm?: number | "none"; json?: boolean }) => {
      const body: SetApiKeyLimits = {
        ...(opts.rpm === undefined ? {} : { rpm_limit: limitValue(opts.rpm) }),
        ...(opts.tpm === undefined ? {} : { tpm_limit: limitValue(opts.tpm) }),
      };
      if (Object.keys(body).length === 0)
        throw new UserError("say which limit to change", `e.g. b9 key limit ${id} --rpm 60 --tpm none`);
      const view = await ctx.client().keys.setLimits(id, body);
      if (opts.json) return ctx.printJson(view);
      const limits = limitsText(view);
      ctx.print(`API key ${view.name} (${view.id}): ${limits === "-" ? "no limits" : limits}.`);
    });
}
