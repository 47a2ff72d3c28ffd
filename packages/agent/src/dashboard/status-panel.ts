import { Box, Text } from "ink";
import React from "react";
import { ago, bytes, columnsOf, percent } from "./format.ts";
import { Section } from "./frame.ts";
import type { DashboardModel, GpuView } from "./model.ts";

const h = React.createElement;
const SEP = " │ ";

/** Identical GPUs share a line ("NVIDIA H100 ×8"), so an eight-GPU machine still fits. */
export interface GpuGroup {
  name: string;
  count: number;
  vramBytes: number;
  usedBytes: number | undefined;
}

export function gpuGroups(gpus: readonly GpuView[]): GpuGroup[] {
  const groups = new Map<string, GpuGroup>();
  for (const g of gpus) {
    const key = `${g.name}\0${g.vramBytes}`;
    const group = groups.get(key);
    if (!group) groups.set(key, { name: g.name, count: 1, vramBytes: g.vramBytes, usedBytes: g.usedBytes });
    else {
      group.count++;
      group.usedBytes =
        group.usedBytes === undefined || g.usedBytes === undefined
          ? undefined
          : group.usedBytes + g.usedBytes;
    }
  }
  return [...groups.values()];
}

function statusColor(status: string): string {
  if (status === "READY") return "green";
  if (status === "DISCONNECTED") return "red";
  return "yellow";
}

/** How the gateway is doing: in full, shorter, in a word or unsaid, as the line leaves room for the pool. */
function gatewayWords(m: DashboardModel, brevity: 0 | 1 | 2 | 3): { text: string; color: string } {
  // The status word (READY, CONNECTING, DISCONNECTED) already says it when there is no room.
  if (m.gateway.connected) return { text: brevity ? "" : " connected", color: "green" };
  if (m.status === "CONNECTING" && m.gateway.reconnects === 0)
    return { text: brevity < 3 ? " connecting…" : "", color: "yellow" };
  const n = `${m.gateway.reconnects} ${m.gateway.reconnects === 1 ? "try" : "tries"}`;
  const text =
    [` unreachable, reconnecting (${n})`, ` unreachable (${n})`, " unreachable", ""][brevity] ?? "";
  return { text, color: "red" };
}

function GpuLine({ group }: { group: GpuGroup }) {
  const each = group.count > 1 ? " each" : "";
  const used = group.usedBytes === undefined ? "" : ` · ${bytes(group.usedBytes)} in use`;
  return h(
    Text,
    { wrap: "truncate-end" },
    "GPU: ",
    h(Text, { bold: true }, group.count > 1 ? `${group.name} ×${group.count}` : group.name),
    ` · ${bytes(group.vramBytes)} VRAM${each}${used}`,
  );
}

/** Status, gateway and pool; CPU, memory, GPUs and the last heartbeat; then one line per kind of GPU. */
export function StatusPanel({
  model: m,
  gpuLines,
  width,
}: {
  model: DashboardModel;
  gpuLines: number;
  /** Columns inside the frame. */
  width: number;
}) {
  const status = m.stopping ? "STOPPING" : m.status;
  const line = (g: string) => `Status: ${status}${SEP}Gateway: ${m.gateway.url}${g}${SEP}Pool: ${m.pool}`;
  const gateway =
    ([0, 1, 2] as const).map((b) => gatewayWords(m, b)).find((g) => columnsOf(line(g.text)) <= width) ??
    gatewayWords(m, 3);
  const u = m.usage;
  const memory = u
    ? `${percent(u.memoryTotalBytes > 0 ? (100 * u.memoryUsedBytes) / u.memoryTotalBytes : 0)} of ${bytes(u.memoryTotalBytes)}`
    : "–";
  const groups = gpuGroups(m.gpus);
  const shown = groups.slice(0, gpuLines);
  return h(
    Section,
    { height: 2 + gpuLines },
    h(
      Text,
      { wrap: "truncate-end" },
      "Status: ",
      h(Text, { bold: true, color: statusColor(status) }, status),
      `${SEP}Gateway: ${m.gateway.url}`,
      h(Text, { color: gateway.color }, gateway.text),
      `${SEP}Pool: ${m.pool}`,
    ),
    h(
      Text,
      { wrap: "truncate-end" },
      `CPU: ${u ? percent(u.cpuPercent) : "–"}${SEP}Memory: ${memory}${SEP}GPUs: ${m.gpus.length}${SEP}Last Heartbeat: ${ago(m.now, m.lastHeartbeatAt)}`,
    ),
    ...shown.map((group, i) => h(Box, { key: i }, h(GpuLine, { group }))),
  );
}
