/**
 * Statistics and their printing, for every bench: percentiles over finite samples, milliseconds with
 * the digits that matter, ratios, and plain-text tables.
 */
import fs from "node:fs";
import os from "node:os";

export const out = (s: string) => process.stdout.write(s);

/** The p-th percentile (nearest rank) of the finite samples; NaN when there are none. */
export function percentile(xs: readonly number[], p: number): number {
  const sorted = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
export const median = (xs: readonly number[]) => percentile(xs, 50);
export const mean = (xs: readonly number[]) =>
  xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;

export const ms = (x: number) =>
  Number.isFinite(x)
    ? Math.abs(x) >= 100
      ? x.toFixed(0)
      : Math.abs(x) >= 10
        ? x.toFixed(1)
        : x.toFixed(2)
    : "-";
export const signed = (x: number) => (Number.isFinite(x) ? (x >= 0 ? `+${ms(x)}` : ms(x)) : "-");
export const ratio = (a: number, b: number, digits = 2) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(digits)}×` : "-";

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
  return `${[line(head), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n")}\n`;
}

/** The machine, the time, and how busy the machine was: every figure is relative to this. */
export function machineLine(): string {
  const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  return (
    `${new Date().toISOString()}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? "?"}), ` +
    `node ${process.version}, load average ${load}`
  );
}

export const loadavg1 = () => Number(fs.readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
