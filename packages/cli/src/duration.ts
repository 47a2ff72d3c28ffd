import { parseDuration as parseDurationMs } from "@beta9/sdk";

/** "30s", "15m", "1h", "7d", or a sum such as "1h30m" → whole seconds, at least one. */
export function parseDuration(text: string): number {
  const seconds = Math.round(parseDurationMs(text) / 1000);
  if (seconds <= 0) throw new RangeError(`"${text}" is zero; a duration must be at least 1s`);
  return seconds;
}

/** Seconds → the largest whole unit, as people say it: 45s, 12m, 3h, 6d. */
export function shortDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
