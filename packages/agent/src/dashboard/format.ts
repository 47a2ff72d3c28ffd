/** Figures as the dashboard prints them. */

export function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${Math.round(n / 2 ** 20)} MiB`;
  return `${Math.round(n / 2 ** 10)} KiB`;
}

export function percent(n: number): string {
  return `${n.toFixed(1)}%`;
}

/** "never", "4s ago", "3m ago", "2h ago". */
export function ago(now: number, then: number | null): string {
  if (then === null) return "never";
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** Local wall-clock time, HH:MM:SS. */
export function clock(time: number): string {
  const d = new Date(time);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** Terminal columns a line of the dashboard's own text takes: one per character (ASCII, │, ·, …). */
export function columnsOf(text: string): number {
  return [...text].length;
}
