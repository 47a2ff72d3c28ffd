import type { JobView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago } from "../../format.ts";
import { details, JSON_FLAG_HELP, table } from "../../output.ts";
import {
  commandLine,
  environmentText,
  exactDuration,
  placementText,
  resourcesText,
  timeoutText,
} from "./describe.ts";
import { attempts } from "./list.ts";

export function addJobShow(job: Command, ctx: Context): void {
  job
    .command("show")
    .description("show one job: its spec, state and why, attempts, and every transition")
    .argument("<id>", "the job's id, from b9 job list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const j = await ctx.client().jobs.get(id);
      if (opts.json) return ctx.printJson(j);
      const now = ctx.now();
      ctx.print(details(describe(j, now)));
      if (j.events?.length) {
        ctx.print(
          `\nTransitions:\n${table(
            ["AT", "STATE", "MACHINE", "REASON"],
            j.events.map((e) => [e.at, e.state, e.machine_id ?? "-", e.reason ?? "-"]),
          )}`,
        );
      }
    });
}

function describe(j: JobView, now: number): Array<[string, string]> {
  const spec = j.spec;
  const pairs: Array<[string, string]> = [
    ["ID", j.id],
    ["Workspace", j.workspace],
    ["State", j.reason ? `${j.state} (${j.reason})` : j.state],
    ["Command", commandLine(spec.command)],
  ];
  if (j.exit_code !== null) pairs.push(["Exit code", String(j.exit_code)]);
  pairs.push(
    ["Attempt", `${attempts(j)} (retries: ${j.max_retries})`],
    ["Priority", String(j.priority)],
    ["Machine", j.machine_id ?? "-"],
    ["Resources", resourcesText(spec)],
    ["Environment", environmentText(spec)],
    ["Placement", placementText(spec)],
    ["Timeout", timeoutText(spec)],
  );
  // Values stay hidden: they may be secrets.
  if (spec.env) pairs.push(["Variables", Object.keys(spec.env).join(", ")]);
  if (spec.inputs?.length)
    pairs.push(["Inputs", spec.inputs.map((i) => `${i.name} (sha256 ${i.sha256.slice(0, 12)}…)`).join("\n")]);
  if (spec.idempotency_key) pairs.push(["Idempotency key", spec.idempotency_key]);
  pairs.push(["Created", `${j.created_at} (${ago(j.created_at, now)})`]);
  if (j.started_at) pairs.push(["Started", `${j.started_at} (${ago(j.started_at, now)})`]);
  if (j.finished_at) pairs.push(["Finished", `${j.finished_at} (${ago(j.finished_at, now)})`]);
  if (j.started_at && j.finished_at)
    pairs.push(["Ran for", exactDuration((Date.parse(j.finished_at) - Date.parse(j.started_at)) / 1000)]);
  return pairs;
}
