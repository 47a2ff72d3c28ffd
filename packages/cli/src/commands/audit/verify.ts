import { readFile } from "node:fs/promises";
import { type AuditExportLine, type AuditVerification, verifyAuditExport } from "@beta9/sdk";
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
    .option("--file <export.jsonl>", "check a file of b9 audit export offline, without the gateway")
    .option(
      "--public-key <file>",
      "with --file: trust checkpoints signed only by this key (PEM), not by the keys the file carries",
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: { file?: string; publicKey?: string; json?: boolean }) => {
      if (opts.publicKey && !opts.file)
        throw new UserError("--public-key goes with --file", "add --file export.jsonl");
      const result = opts.file
        ? await verifyAuditExport(
            await readExport(opts.file),
            opts.publicKey ? await readText(opts.publicKey) : undefined,
          )
        : await ctx.client().audit.verify();
      report(ctx, result, opts.json);
    });
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new UserError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The export's lines; a line that is not JSON is named, so a damaged file is not taken for a verdict. */
async function readExport(file: string): Promise<AuditExportLine[]> {
  const lines = (await readText(file)).split("\n").filter((l) => l.trim() !== "");
  return lines.map((line, i) => {
    try {
      return JSON.parse(line) as AuditExportLine;
    } catch {
      throw new UserError(
        `line ${i + 1} of ${file} is not JSON`,
        "pass a file written by b9 audit export --format jsonl",
      );
    }
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
