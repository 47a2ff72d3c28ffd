import type { AuditEventView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";
import { absolute, when } from "../usage.ts";

interface Options {
  since?: string;
  until?: string;
  actor?: string;
  action?: string;
  resource?: string;
  workspace?: string;
  follow?: boolean;
  json?: boolean;
}

export function addAuditList(audit: Command, ctx: Context): void {
  audit
    .command("list")
    .alias("ls")
    .description(
      "audit events: who did what to what, with what outcome (your workspace's; the operator sees all)",
    )
    .option(
      "--since <when>",
      "from this long ago (30m, 24h, 7d) or from an ISO time or date",
      when("--since"),
    )
    .option("--until <when>", "up to this long ago or this ISO time or date", when("--until"))
    .option("--actor <id>", "only this actor's events (a key id, machine id or identity)")
    .option("--action <action>", "only this action, e.g. key.create, machine.cordon")
    .option("--resource <kind:id>", "only events about this resource, e.g. key:key_1a2b, machine:m1")
    .option("--workspace <name>", "another workspace's events (the operator's key)")
    .option("--follow", "keep printing new events as they are written (Ctrl+C to stop)")
    .option("--json", `${JSON_FLAG_HELP}; one event a line with --follow`)
    .action(async (opts: Options) => {
      const now = ctx.now();
      const filter = {
        since: opts.since === undefined ? undefined : absolute(opts.since, now),
        until: opts.until === undefined ? undefined : absolute(opts.until, now),
        actor: opts.actor,
        action: opts.action,
        resource: opts.resource,
        workspace: opts.workspace,
      };
      const client = ctx.client();
      if (opts.follow) {
        const stop = new AbortController();
        const unlisten = ctx.onInterrupt(() => stop.abort());
        try {
          for await (const e of client.audit.events({ ...filter, follow: true }, { signal: stop.signal }))
            ctx.print(opts.json ? JSON.stringify(e) : row(e).join("  "));
        } catch (err) {
          if (!stop.signal.aborted) throw err;
        } finally {
          unlisten();
        }
        return;
      }
      const events: AuditEventView[] = [];
      for await (const e of client.audit.events(filter)) events.push(e);
      if (opts.json) return ctx.printJson({ events });
      if (events.length === 0) return ctx.note("No audit events.");
      ctx.print(
        table(
          ["TIME", "CHAIN/SEQ", "ACTOR", "WORKSPACE", "ACTION", "RESOURCE", "OUTCOME", "REQUEST"],
          events.map(row),
        ),
      );
    });
}

function row(e: AuditEventView): string[] {
  return [
    e.at,
    `${e.chain}/${e.seq}`,
    e.actor.id ? `${e.actor.type}:${e.actor.id}` : e.actor.type,
    e.workspace ?? "-",
    e.action,
    e.resource ?? "-",
    e.outcome,
    e.request_id ?? "-",
  ];
}
