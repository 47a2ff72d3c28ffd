import { type MachineStatus, MachineStatuses } from "@beta9/sdk";
import { type Command, InvalidArgumentError } from "commander";
import type { Context } from "../../context.ts";
import { ago, gib, gpuSummary, statusLine } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

interface Options {
  pool?: string;
  status?: MachineStatus;
  json?: boolean;
}

export function addMachineList(machine: Command, ctx: Context): void {
  machine
    .command("list")
    .alias("ls")
    .description("list the machines that joined")
    .option("--pool <pool>", "only machines in this pool")
    .option("--status <status>", `only machines in this state: ${MachineStatuses.join(", ")}`, status)
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      const list = await ctx.client().machines.list({ pool: opts.pool, status: opts.status });
      if (opts.json) return ctx.printJson(list);
      if (list.machines.length === 0) {
        return ctx.note("No machines found. Add one with b9 token create, then b9agent init on the machine.");
      }
      const now = ctx.now();
      ctx.print(
        table(
          ["ID", "NAME", "POOL", "COUNTRY", "STATUS", "CPU", "MEMORY", "GPUS", "AGENT", "LAST HEARTBEAT"],
          list.machines.map((m) => [
            m.id,
            m.name,
            m.pool,
            countryText(m),
            statusLine(m),
            String(m.hardware.cpu_cores),
            gib(m.hardware.memory_total_bytes),
            gpuSummary(m.hardware.gpus),
            m.agent_version,
            ago(m.last_heartbeat_at, now),
          ]),
        ),
      );
    });
}

/** The operator's country ("-": none set), and what the machine declares when it says otherwise. */
function countryText(m: { country: string | null; declared_country?: string | null | undefined }): string {
  const set = m.country ?? "-";
  return m.declared_country && m.declared_country !== m.country ? `${set} (says ${m.declared_country})` : set;
}

/** Upper-cased, so people may spare the shift key. */
function status(value: string): MachineStatus {
  const wanted = value.trim().toUpperCase();
  const found = MachineStatuses.find((s) => s === wanted);
  if (!found)
    throw new InvalidArgumentError(`unknown status "${value}"; choose from ${MachineStatuses.join(", ")}`);
  return found;
}
