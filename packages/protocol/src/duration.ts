const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "500ms", "30s", "15m", "1h", "7d", or a bare number of seconds → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 30s, 15m, 1h, 7d)`);
  return Math.round(Number(m[1]) * (UNIT_MS[m[2] ?? "s"] ?? 1_000));
}
