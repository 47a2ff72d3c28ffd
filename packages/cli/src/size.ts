/** Bytes per unit; SI units are powers of 1000, IEC units powers of 1024, as on the labels of disks and GPUs. */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** "8GB" → 8e9, "512MiB" → 536870912, "16 GiB", "1.5GB", "1024" (bytes). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) throw new RangeError(`"${text}" is not a size; write it like 8GB, 512MiB or 16GiB`);
  const unit = (m[2] ?? "").toLowerCase();
  const per = unit === "" ? 1 : UNITS[unit];
  if (per === undefined) {
    const hint = /^[kmgt]$/.test(unit)
      ? `"${m[2]}" could mean ${m[1]}${unit.toUpperCase()}B or ${m[1]}${unit.toUpperCase()}iB; say which`
      : `unknown unit "${m[2]}"; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB`;
    throw new RangeError(`"${text}": ${hint}`);
  }
  const bytes = Math.round(Number(m[1]) * per);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`"${text}" is too large`);
  return bytes;
}

const SHOWN: Array<[string, number]> = [
  ["TiB", 2 ** 40],
  ["TB", 1e12],
  ["GiB", 2 ** 30],
  ["GB", 1e9],
  ["MiB", 2 ** 20],
  ["MB", 1e6],
  ["KiB", 2 ** 10],
  ["KB", 1e3],
];

/** Bytes in the largest unit that divides them exactly, so "8GB" reads back as "8 GB" and "16GiB" as "16 GiB". */
export function formatSize(bytes: number): string {
  for (const [name, per] of SHOWN) {
    if (bytes >= per && bytes % per === 0) return `${bytes / per} ${name}`;
  }
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes} B`;
}
