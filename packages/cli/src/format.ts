import type { Gpu, MachineView } from "@beta9/sdk";
import { shortDuration } from "./duration.ts";

/** "3s ago" for a past timestamp; "never" when there is none. */
export function ago(iso: string | null, nowMs: number): string {
  if (iso === null) return "never";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  return `${shortDuration((nowMs - then) / 1000)} ago`;
}

/** "in 59m" for a future timestamp, "3h ago" for a past one. */
export function relative(iso: string, nowMs: number): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  return then > nowMs ? `in ${shortDuration((then - nowMs) / 1000)}` : ago(iso, nowMs);
}

/** Bytes → "64 GiB", "15.5 GiB". */
export function gib(bytes: number): string {
  const value = (bytes / 2 ** 30).toFixed(1).replace(/\.0$/, "");
  return `${value} GiB`;
}

/** Same-named GPUs counted: "2x NVIDIA H100 80GB, 1x NVIDIA A10"; "-" when there are none. */
export function gpuSummary(gpus: readonly Gpu[]): string {
  if (gpus.length === 0) return "-";
  const counts = new Map<string, number>();
  for (const gpu of gpus) counts.set(gpu.name, (counts.get(gpu.name) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${n}x ${name}`).join(", ");
}

/** "-" for empty cells, so columns never look shifted. */
export function orDash(text: string | undefined | null): string {
  return text ? text : "-";
}

/** Bytes as a person reads a download: "512 B", "93.8 MiB", "1.2 GiB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** A machine's status, with its requests in flight while a drain waits for them: "DRAINING (2 in flight)". */
export function statusLine(m: Pick<MachineView, "status" | "in_flight">): string {
  return m.status === "DRAINING" && m.in_flight !== undefined
    ? `DRAINING (${m.in_flight} in flight)`
    : m.status;
}
