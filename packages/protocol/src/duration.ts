const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * "500ms", "30s", "15m", "1h", "7d", a sum such as "1h30m", or a bare number of seconds →
 * milliseconds. Shared by every command line that takes a duration.
 */
export function parseDuration(text: string): number {
  const t = text.trim().toLowerCase();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1_000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) {
    throw new RangeError(`"${text}" is not a duration; use a number and a unit: 30s, 15m, 1h, 7d`);
  }
  let ms = 0;
  for (const [, amount, , unit] of t.matchAll(/(\d+(\.\d+)?)(ms|s|m|h|d)/g))
    ms += Number(amount) * (UNIT_MS[unit ?? "s"] ?? 1_000);
  return Math.round(ms);
}
