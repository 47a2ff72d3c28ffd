import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";

/*
 * Heap settings a long-running Beta9 process applies to itself at start (the gateway, the agent, the
 * builtin engine), so that its RSS follows what it uses. Node 24's V8 sizes the heap for throughput on
 * a machine with GBs to spare; our processes mostly sit idle beside other work (bench/heartbeats,
 * bench/engine). Imported as "@beta9/http/heap": no other module of this package comes with it.
 */

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
 * Keeps the heap near what it uses: the young generation (both semispaces) at most `youngGenerationCap`
 * bytes, old space growing by half before a collection. --max-semi-space-size only counts at start, so
 * the young generation is held at the cap by letting it grow (V8 doubles it) only while it is under:
 * checked after each collection. The old space's growing factor is read at each collection, so it is
 * set once. The operator's own node flags win.
 */
export function keepHeapSmall(youngGenerationCap: number): void {
  if (!chosen(/--heap[-_]growing[-_]percent/))
    v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  if (chosen(/--(max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/)) return;
  let growing = true;
  const adjust = () => {
    const grow = newSpaceSize() * 2 <= youngGenerationCap;
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
  };
  new PerformanceObserver(adjust).observe({ entryTypes: ["gc"] });
  adjust();
}

/**
 * One collection that gives memory back, for a process that has started and now waits (an idle agent,
 * a warm engine): start-up's garbage, the bytecode of code that ran only once, and the young generation
 * shrunk to its least. V8 only does this under memory pressure or in a browser's idle time, neither of
 * which a Node daemon has; its gc() with the "last-resort" flavour is that collection. Tens of ms, once.
 */
export function releaseStartupMemory(): { rssBefore: number; rssAfter: number } {
  const rssBefore = process.memoryUsage.rss();
  v8.setFlagsFromString("--expose-gc");
  // The flag reaches contexts made from now on: a fresh one hands over its gc().
  const gc = vm.runInNewContext("gc") as (options: object) => void;
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  return { rssBefore, rssAfter: process.memoryUsage.rss() };
}

/** "RSS 131 → 104 MB", for the log line that says it was done. */
export function describeRelease(r: { rssBefore: number; rssAfter: number }): string {
  const mb = (n: number) => Math.round(n / 2 ** 20);
  return `gave start-up memory back: RSS ${mb(r.rssBefore)} → ${mb(r.rssAfter)} MB`;
}
