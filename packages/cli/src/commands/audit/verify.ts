import type { AuditVerification } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";
import { UserError } from "../../user-error.ts";

export function addAuditVerify(audit: Command, ctx: Context): void {
  audit
    .command("verify")
    .description(
      "check the audit log's hash chains and signed checkpoints: names the first broken sequence number of each chain (a row edited, removed or inserted)",
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { json?: boolean }) => {
      const result = await ctx.client().audit.verify();
      report(ctx, result, opts.json);
    });
}

/** Prints the verification; a broken chain ends the command with an error (exit status 1). */
export function report(ctx: Context, result: AuditVerification, json?: boolean): void {
  if (json) ctx.printJson(result);
  else if (result.chains.length === 0) ctx.note("No audit events to verify.");
  else
    ctx.print(
      table(
        ["CHAIN", "EVENTS", "SEQ", "CHECKPOINTS", "LAST CHECKPOINT", "VERDICT"],
        result.chains.map((c) => [
          c.chain,
          String(c.events),
          c.first_seq === null ? "-" : `${c.first_seq}-${c.last_seq}`,
          String(c.checkpoints),
          c.last_checkpoint ? `${c.last_checkpoint.seq} (key ${c.last_checkpoint.key_id})` : "-",
          c.broken_at === null ? "intact" : `BROKEN at ${c.broken_at}: ${c.reason}`,
        ]),
      ),
    );
  const broken = result.chains.filter((c) => c.broken_at !== null);
  if (broken.length > 0)
    throw new UserError(
      `the audit log is broken: ${broken.map((c) => `chain ${c.chain} at sequence number ${c.broken_at}`).join(", ")}`,
      "compare with an earlier export (b9 audit export) and the database's backups to see what changed",
    );
}
