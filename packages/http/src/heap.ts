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
export function keepHeapSmall(youngGenerationCap: number): YoungGenerationCap {
  if (!chosen(/--heap[-_]growing[-_]percent/))
    v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  if (chosen(/--(max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/)) return { set() {} };
  let cap = youngGenerationCap;
  let growing = true;
  const adjust = () => {
    const grow = newSpaceSize() * 2 <= cap;
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
  };
  new PerformanceObserver(adjust).observe({ entryTypes: ["gc"] });
  adjust();
  return {
    set(bytes) {
      cap = bytes;
      adjust();
    },
  };
}

/** The young generation's cap, changed while the process runs (keepHeapSmall's). */
export interface YoungGenerationCap {
  set(bytes: number): void;
}

/**
 * The young generation sized by the work: `idleCap` while the process waits, up to `busyCap` from
 * its first request on, and back to `idleCap` (with the memory-reducing collection) once nothing
 * came for `idleAfterMs`. Returns the function to call as work comes (cheap: a time kept). Held at
 * 4 MB under load, the agent spent a quarter of its CPU in young-generation collections (bench/gateway).
 */
export function sizeYoungGenerationByWork(
  cap: YoungGenerationCap,
  o: { idleCap: number; busyCap: number; idleAfterMs: number; onIdle?: (released: Release) => void },
): () => void {
  let lastWork = 0;
  let timer: NodeJS.Timeout | undefined;
  return () => {
    lastWork = Date.now();
    if (timer) return;
    cap.set(o.busyCap);
    timer = setInterval(() => {
      if (Date.now() - lastWork < o.idleAfterMs) return;
      clearInterval(timer);
      timer = undefined;
      cap.set(o.idleCap);
      const released = releaseStartupMemory();
      o.onIdle?.(released);
    }, o.idleAfterMs);
    timer.unref();
  };
}

/** RSS before and after releaseStartupMemory(). */
export interface Release {
  rssBefore: number;
  rssAfter: number;
}

/**
 * One collection that gives memory back, for a process that has started and now waits (an idle agent,
 * a warm engine): start-up's garbage, the bytecode of code that ran only once, and the young generation
 * shrunk to its least. V8 only does this under memory pressure or in a browser's idle time, neither of
 * which a Node daemon has; its gc() with the "last-resort" flavour is that collection. Tens of ms, once.
 */
export function releaseStartupMemory(): Release {
  const rssBefore = process.memoryUsage.rss();
  v8.setFlagsFromString("--expose-gc");
  // The flag reaches contexts made from now on: a fresh one hands over its gc().
  const gc = vm.runInNewContext("gc") as (options: object) => void;
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  return { rssBefore, rssAfter: process.memoryUsage.rss() };
}

/** "RSS 131 → 104 MB", for the log line that says it was done. */
export function describeRelease(r: Release, what = "start-up memory"): string {
  const mb = (n: number) => Math.round(n / 2 ** 20);
  return `gave ${what} back: RSS ${mb(r.rssBefore)} → ${mb(r.rssAfter)} MB`;
}
