const SECONDS_PER_UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** "30s", "15m", "1h", "7d", or a sum such as "1h30m" → seconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim().toLowerCase();
  if (!/^(\d+[smhd])+$/.test(trimmed)) {
    throw new RangeError(`"${text}" is not a duration; use a number and a unit: 30s, 15m, 1h, 7d`);
  }
  let seconds = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+)([smhd])/g)) {
    seconds += Number(amount) * (SECONDS_PER_UNIT[unit ?? "s"] ?? 1);
  }
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
