/** The smallest terminal the dashboard draws in; below it, it says so instead. */
export const MIN_COLUMNS = 60;
export const MIN_ROWS = 22;

/** Rows of frame: title, 2 status lines, 4 dividers, 4 panel titles with their rules, bottom, footer. */
const CHROME_ROWS = 17;

/** How many body rows each part of the dashboard gets. */
export interface LayoutPlan {
  gpuLines: number;
  runs: number;
  jobs: number;
  inference: number;
  logs: number;
}

/**
 * Share the terminal's rows: each panel gets at least one row, GPU lines and the
 * jobs, served models and inference panels grow up to what they want but to no more than a quarter of the screen
 * each, and the logs take the rest. Null when the terminal is smaller than MIN_COLUMNS × MIN_ROWS.
 */
export function planLayout(
  size: { columns: number; rows: number },
  want: { gpuLines: number; runs: number; jobs: number; inference: number },
): LayoutPlan | null {
  if (size.columns < MIN_COLUMNS || size.rows < MIN_ROWS) return null;
  let free = size.rows - CHROME_ROWS - 4;
  const take = (wanted: number, cap: number) => {
    const n = Math.max(0, Math.min(wanted, cap, free));
    free -= n;
    return n;
  };
  const quarter = Math.floor(size.rows / 4);
  const gpuLines = take(want.gpuLines, quarter);
  const runs = 1 + take(want.runs - 1, quarter);
  const jobs = 1 + take(want.jobs - 1, quarter);
  const inference = 1 + take(want.inference - 1, quarter);
  return { gpuLines, runs, jobs, inference, logs: 1 + free };
}
