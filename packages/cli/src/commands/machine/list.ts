import type { MachineStatus } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago, gib, gpuSummary } from "../../format.ts";
import { JSON_FLAG_HELP, table } from "../../output.ts";

interface Options {
  pool?: string;
  status?: string;
  json?: boolean;
}

export function addMachineList(machine: Command, ctx: Context): void {
  machine
    .command("list")
    .alias("ls")
    .description("list the machines that joined")
    .option("--pool <pool>", "only machines in this pool")
    .option(
      "--status <status>",
      "only machines in this state: READY, BUSY, UNHEALTHY, OFFLINE, CORDONED, DRAINING",
    )
    .option("--json", JSON_FLAG_HELP)
    .action(async (opts: Options) => {
      // The gateway validates the value; upper-casing only spares people the shift key.
      const status = opts.status?.toUpperCase() as MachineStatus | undefined;
      const list = await ctx.client().machines.list({ pool: opts.pool, status });
      if (opts.json) return ctx.printJson(list);
      if (list.machines.length === 0) {
        return ctx.note("No machines found. Add one with b9 token create, then b9agent init on the machine.");
      }
      const now = ctx.now();
      ctx.print(
        table(
          ["ID", "NAME", "POOL", "STATUS", "CPU", "MEMORY", "GPUS", "LAST HEARTBEAT"],
          list.machines.map((m) => [
            m.id,
            m.name,
            m.pool,
            m.status,
            String(m.hardware.cpu_cores),
            gib(m.hardware.memory_total_bytes),
            gpuSummary(m.hardware.gpus),
            ago(m.last_heartbeat_at, now),
          ]),
        ),
      );
    });
}
