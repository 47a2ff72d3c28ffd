import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";

/**
 * The young generation Node 20 had (16 MB semispaces). Node 24's V8 sizes it from the heap limit, up to
 * 64 MB semispaces on a machine with a few GB: 128 MB of RSS that a gateway holding thousands of idle
 * agent channels never needs (bench/heartbeats).
 */
export const YOUNG_GENERATION_CAP = 32 * 1024 * 1024;
/** Old space may grow by half of what is live before V8 collects it, not fourfold. */
const HEAP_GROWING_PERCENT = 50;

/** V8 flags given to node (NODE_OPTIONS, the command line) that say the operator chose for themselves. */
function chosen(flag: RegExp): boolean {
  return flag.test(`${process.execArgv.join(" ")} ${process.env.NODE_OPTIONS ?? ""}`);
}

function newSpaceSize(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}

/**
 * Keeps the gateway's heap near what it uses. --max-semi-space-size only counts at start, so the young
 * generation is held at the cap by letting it grow (V8 doubles it) only while it is under: checked after
 * each collection. The old space's growing factor is read at each collection, so it is set once.
 */
export function keepHeapSmall(): void {
  if (!chosen(/--heap[-_]growing[-_]percent/))
    v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  if (chosen(/--(max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/)) return;
  let growing = true;
  const adjust = () => {
    const grow = newSpaceSize() < YOUNG_GENERATION_CAP;
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
  };
  new PerformanceObserver(adjust).observe({ entryTypes: ["gc"] });
  adjust();
}
