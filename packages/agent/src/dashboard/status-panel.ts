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

function GatewayState({ m, terse }: { m: DashboardModel; terse: boolean }) {
  // Where the line is too narrow, a connected gateway goes unsaid (READY says it) so the pool still shows.
  if (m.gateway.connected) return terse ? null : h(Text, { color: "green" }, " connected");
  if (m.status === "CONNECTING" && m.gateway.reconnects === 0)
    return h(Text, { color: "yellow" }, " connecting…");
  return h(Text, { color: "red" }, ` unreachable, reconnecting (${m.gateway.reconnects} tries)`);
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
  const terse =
    columnsOf(`Status: ${status}${SEP}Gateway: ${m.gateway.url} connected${SEP}Pool: ${m.pool}`) > width;
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
      h(GatewayState, { m, terse }),
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
