import type { Gpu, MachineView } from "@beta9/sdk";
import type { Command } from "commander";
import type { Context } from "../../context.ts";
import { ago, gib, statusLine } from "../../format.ts";
import { details, JSON_FLAG_HELP } from "../../output.ts";

export function addMachineShow(machine: Command, ctx: Context): void {
  machine
    .command("show")
    .description("show one machine: state, hardware, usage")
    .argument("<id>", "the machine's id, from b9 machine list")
    .option("--json", JSON_FLAG_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const m = await ctx.client().machines.get(id);
      if (opts.json) return ctx.printJson(m);
      ctx.print(details(describe(m, ctx.now())));
    });
}

function describe(m: MachineView, now: number): Array<[string, string]> {
  const hw = m.hardware;
  const usage = m.usage;
  const cpuUse = usage ? `, ${Math.round(usage.cpu_percent)}% busy` : "";
  const memUse = usage ? ` (${gib(usage.memory_used_bytes)} used)` : "";
  return [
    ["ID", m.id],
    ["Name", m.name],
    ["Pool", m.pool],
    ["Country", m.country ?? "not set (b9 machine set ID --country CC, or b9 token create --country)"],
    ...(m.declared_country && m.declared_country !== m.country
      ? [
          ["Declared country", `${m.declared_country} (the machine's own word; not used to place work)`] as [
            string,
            string,
          ],
        ]
      : []),
    ["PUE", String(m.pue ?? 1)],
    ["Status", statusLine(m)],
    ...(m.drain_waiting_for ? [["Drain waits for", m.drain_waiting_for] as [string, string]] : []),
    ["Hostname", m.hostname],
    ["Agent version", m.agent_version],
    ["Connection", m.connection],
    ["Joined", `${m.joined_at} (${ago(m.joined_at, now)})`],
    ["Last heartbeat", ago(m.last_heartbeat_at, now)],
    ["Running jobs", String(m.running_jobs)],
    ["Job runners", runnersLine(m)],
    ["System", `${hw.os}/${hw.arch}`],
    ["CPU", `${hw.cpu_model} (${hw.cpu_cores} cores${cpuUse})`],
    ["Memory", `${gib(hw.memory_total_bytes)}${memUse}`],
    ["GPUs", hw.gpus.length === 0 ? "none" : hw.gpus.map((g) => gpuLine(g, m)).join("\n")],
  ];
}

/** "bwrap (default), native, podman (rootless); memory limits: cgroup v2". */
function runnersLine(m: MachineView): string {
  const r = m.runners;
  if (r === undefined) return "not reported (the agent has not said, or is older)";
  const names = [
    r.default === "bwrap" ? "bwrap (default), native" : `native (default)${r.bwrap ? ", bwrap" : ""}`,
    ...(r.podman ? [`podman${r.podman.rootless ? " (rootless)" : ""}`] : []),
  ];
  return `${names.join(", ")}; memory limits: ${r.cgroups ? `cgroup ${r.cgroups}` : "none (no cgroup can be made)"}`;
}

function gpuLine(gpu: Gpu, m: MachineView): string {
  const live = m.usage?.gpus.find((u) => u.index === gpu.index);
  const used = live?.memory_used_bytes ?? gpu.memory_used_bytes;
  const util = live?.utilization_percent ?? gpu.utilization_percent;
  const parts = [`${gib(gpu.memory_total_bytes)}${gpu.unified_memory ? " unified" : ""}`];
  if (gpu.backend) parts.push(gpu.backend);
  if (gpu.driver_version) parts.push(`driver ${gpu.driver_version}`);
  if (used !== undefined) parts.push(`${gib(used)} used`);
  if (util !== undefined) parts.push(`${Math.round(util)}% busy`);
  return `${gpu.index}: ${gpu.name} (${parts.join(", ")})`;
}
