import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP } from "../../output.ts";
import { UserError } from "../../user-error.ts";
import { type ResidencyOptions, residencyBody, residencyOptions, residencyText } from "./residency.ts";

function onOff(v: string): boolean {
  const t = v.trim().toLowerCase();
  if (t === "on") return true;
  if (t === "off") return false;
  throw new UserError(
    `--audit-content takes on or off, not ${JSON.stringify(v)}`,
    "e.g. --audit-content off",
  );
}

export function addWorkspaceSet(workspace: Command, ctx: Context): void {
  residencyOptions(
    workspace
      .command("set")
      .description(
        "set where a workspace's work may run (the operator only; its requests are refused rather than served elsewhere), " +
          "or whether its audit log keeps prompts and answers (its own admins)",
      )
      .argument("<name>", "the workspace, from b9 workspace list"),
    "its",
    true,
  )
    .option(
      "--audit-content <on|off>",
      "keep the prompt and the answer of each inference request in the audit log (personal data: a GDPR choice; off by default)",
      onOff,
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (name: string, opts: ResidencyOptions & { auditContent?: boolean; json?: boolean }) => {
      const body = residencyBody(opts);
      if (Object.keys(body).length === 0 && opts.auditContent === undefined)
        throw new UserError(
          "say what to set",
          `e.g. b9 workspace set ${name} --region eu, or b9 workspace set ${name} --audit-content off`,
        );
      const client = ctx.client();
      let view = Object.keys(body).length > 0 ? await client.workspaces.setResidency(name, body) : undefined;
      if (opts.auditContent !== undefined)
        view = await client.workspaces.setSettings(name, { audit_content: opts.auditContent });
      if (!view) return;
      if (opts.json) return ctx.printJson(view);
      if (Object.keys(body).length > 0) {
        const where = residencyText(view);
        ctx.print(`Workspace ${view.name} runs ${where === "anywhere" ? "anywhere" : `only in ${where}`}.`);
      }
      if (opts.auditContent !== undefined)
        ctx.print(
          view.audit_content
            ? `Workspace ${view.name}'s audit log keeps prompts and answers (since ${view.audit_content_since}); they are removed only with the events, after the audit retention.`
            : `Workspace ${view.name}'s audit log keeps no prompts or answers from now on (events already written keep theirs until the audit retention).`,
        );
    });
}
