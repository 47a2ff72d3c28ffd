/**
 * `rows` in slices whose sizes are powers of two up to `max` (37 rows: 32, 4, 1): a multi-row INSERT
 * has one SQL text per size, so the few prepared statements of each size are kept and reused
 * (dialects/sqlite.ts) instead of one compiled for every batch size that happens.
 */
export function* powerOfTwoSlices<T>(rows: readonly T[], max: number): Generator<readonly T[]> {
  let i = 0;
  while (i < rows.length) {
    let size = 1;
    while (size * 2 <= Math.min(max, rows.length - i)) size *= 2;
    yield rows.slice(i, i + size);
    i += size;
  }
}
