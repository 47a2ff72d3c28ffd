import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/** One /proc/PID/stat line (a few hundred bytes; the kernel's longest is well under 1 KiB). */
const STAT_BUFFER = Buffer.alloc(4096);

/** Linux reports process times in USER_HZ ticks, 100 per second on every architecture it ships for. */
const TICKS_PER_SECOND = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime of the process itself, in seconds (its reaped children are counted by cpuSeconds). */
  ownSeconds: number;
  /** cutime + cstime: what its children that it waited for used. */
  childrenSeconds: number;
}

/**
 * Parses /proc/PID/stat. The command name (field 2) may hold spaces and parentheses, so fields are
 * counted from the last ')'. Returns undefined for text that is not a stat line.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After ")": state(3) ppid(4) pgrp(5) session(6) tty(7) tpgid(8) flags(9) minflt(10) cminflt(11)
  // majflt(12) cmajflt(13) utime(14) stime(15) cutime(16) cstime(17)
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  const values = [field(4), field(14), field(15), field(16), field(17)];
  if (!Number.isInteger(pid) || values.some((v) => !Number.isFinite(v) || v < 0)) return undefined;
  return {
    pid,
    ppid: field(4),
    ownSeconds: (field(14) + field(15)) / TICKS_PER_SECOND,
    childrenSeconds: (field(16) + field(17)) / TICKS_PER_SECOND,
  };
}

function readStatNow(procRoot: string, pid: number): ProcStat | undefined {
  try {
    return parseProcStat(readFileSync(join(procRoot, String(pid), "stat"), "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Every process below `root` (itself included), from the kernel's lists of each thread's children
 * (/proc/PID/task/TID/children): a few reads, where the parent links need every process's stat.
 * Undefined where the kernel keeps no such lists (CONFIG_PROC_CHILDREN off).
 */
function childrenTree(procRoot: string, root: number): ProcStat[] | undefined {
  const found: ProcStat[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const stat = readStatNow(procRoot, pid);
    if (stat === undefined) continue;
    found.push(stat);
    let tids: string[];
    try {
      tids = readdirSync(join(procRoot, String(pid), "task"));
    } catch {
      if (pid === root) return undefined;
      continue;
    }
    for (const tid of tids) {
      let text: string;
      try {
        text = readFileSync(join(procRoot, String(pid), "task", tid, "children"), "utf8");
      } catch (err) {
        if (pid === root && (err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        continue; // a thread that ended meanwhile
      }
      for (const child of text.split(" ")) if (child.trim() !== "") queue.push(Number(child));
    }
  }
  return found;
}

async function readStatLater(procRoot: string, pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(join(procRoot, String(pid), "stat"), "utf8"));
  } catch {
    return undefined;
  }
}

/** Every process below `root` (itself included), from the parent links in /proc. */
async function processTree(procRoot: string, root: number): Promise<ProcStat[]> {
  let names: string[];
  try {
    names = await readdir(procRoot);
  } catch {
    return [];
  }
  const all = (
    await Promise.all(names.filter((n) => /^\d+$/.test(n)).map((n) => readStatLater(procRoot, Number(n))))
  ).filter((s) => s !== undefined);
  const children = new Map<number, ProcStat[]>();
  for (const s of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s]);
  const found: ProcStat[] = [];
  const top = all.find((s) => s.pid === root);
  if (top === undefined) return [];
  const queue = [top];
  while (queue.length > 0) {
    const s = queue.shift()!;
    found.push(s);
    queue.push(...(children.get(s.pid) ?? []));
  }
  return found;
}

/**
 * The CPU time a process tree has used so far, growing only: processes seen once keep counting
 * after they exit (at their last reading), and what the tree's members reaped is counted through
 * their cutime/cstime. When the tree's root is this process's own child, its whole total comes back
 * once it is reaped: this process's cutime grows by it, so the root's last reading is replaced by
 * that growth since the root was last seen alive (children reaped by this process in that same
 * moment are counted too: a small over-estimate, where missing a short job's tail was a large under-one).
 */
export class ProcessTreeCpu {
  readonly #root: number;
  readonly #procRoot: string;
  readonly #ownChild: boolean;
  readonly #last = new Map<number, number>();
  /** The tree's pids at the last full scan of /proc; between scans only these are read. */
  #members: number[] = [];
  #scannedAt = Number.NEGATIVE_INFINITY;
  /** This process's reaped-children time when the root was last seen alive. */
  #selfWhileAlive: number | undefined;
  /** This process's reaped-children time when the watch began (read at once, before any await). */
  readonly #selfAtStart: number | undefined;

  /**
   * With `keepOpen`, the members' stat files stay open between readings (one pread each, where a
   * read by path is an open, a read and a close): for a meter read at every answer's end. Its owner
   * then calls close().
   */
  readonly #open: Map<number, number> | undefined;

  constructor(pid: number, opts: { procRoot?: string; ownChild?: boolean; keepOpen?: boolean } = {}) {
    this.#root = pid;
    this.#procRoot = opts.procRoot ?? "/proc";
    this.#ownChild = opts.ownChild ?? false;
    this.#open = opts.keepOpen ? new Map() : undefined;
    this.#selfAtStart = this.#ownChild
      ? readStatNow(this.#procRoot, process.pid)?.childrenSeconds
      : undefined;
  }

  /**
   * The tree's members anew at most once a second (answers end far more often), from the kernel's
   * children lists, else a scan of all /proc; between, the known pids' stat files only. The small
   * reads are synchronous: a few µs each, where an async read costs a round trip through the pool.
   */
  async #tree(): Promise<ProcStat[]> {
    if (Date.now() - this.#scannedAt >= 1_000) {
      const tree =
        childrenTree(this.#procRoot, this.#root) ?? (await processTree(this.#procRoot, this.#root));
      this.#members = tree.map((s) => s.pid);
      this.#scannedAt = Date.now();
      // Files of processes no longer in the tree are closed.
      for (const pid of this.#open?.keys() ?? []) if (!this.#members.includes(pid)) this.#closeStat(pid);
      return tree;
    }
    const stats = this.#members.map((pid) =>
      this.#open ? this.#readOpen(pid) : readStatNow(this.#procRoot, pid),
    );
    // A pid whose process is gone is not followed further (it may be reused).
    const tree = stats.filter((s) => s !== undefined);
    return tree[0]?.pid === this.#root ? tree : [];
  }

  /** A member's stat through its open file; a process gone (or a file that cannot be read) closes it. */
  #readOpen(pid: number): ProcStat | undefined {
    const open = this.#open!;
    let fd = open.get(pid);
    try {
      if (fd === undefined) {
        fd = openSync(join(this.#procRoot, String(pid), "stat"), "r");
        open.set(pid, fd);
      }
      const n = readSync(fd, STAT_BUFFER, 0, STAT_BUFFER.length, 0);
      return parseProcStat(STAT_BUFFER.toString("latin1", 0, n));
    } catch {
      this.#closeStat(pid);
      return undefined;
    }
  }

  #closeStat(pid: number): void {
    const fd = this.#open?.get(pid);
    if (fd === undefined) return;
    this.#open!.delete(pid);
    try {
      closeSync(fd);
    } catch {}
  }

  /** Closes the stat files kept open (keepOpen); a later read opens them again. */
  close(): void {
    for (const pid of [...(this.#open?.keys() ?? [])]) this.#closeStat(pid);
  }

  #selfChildrenSeconds(): number | undefined {
    if (!this.#ownChild) return undefined;
    return readStatNow(this.#procRoot, process.pid)?.childrenSeconds;
  }

  /** Seconds of CPU; undefined when the tree was never readable (no /proc, or the process is gone). */
  async read(): Promise<number | undefined> {
    // Before the tree: if the root is alive after this, it was not reaped yet when this was read.
    const self = this.#selfChildrenSeconds();
    const tree = await this.#tree();
    for (const s of tree) {
      const seconds = s.ownSeconds + s.childrenSeconds;
      this.#last.set(s.pid, Math.max(seconds, this.#last.get(s.pid) ?? 0));
    }
    if (tree.length > 0) this.#selfWhileAlive = self;
    else if (self !== undefined && this.#selfWhileAlive !== undefined) {
      const reaped = self - this.#selfWhileAlive;
      this.#last.set(this.#root, Math.max(reaped, this.#last.get(this.#root) ?? 0));
      // Once: later reaps are other children's.
      this.#selfWhileAlive = undefined;
    } else if (self !== undefined && this.#selfAtStart !== undefined && this.#last.size === 0) {
      // Gone before it was ever read (a short job on a busy machine): reaped since the watch began.
      this.#last.set(this.#root, Math.max(0, self - this.#selfAtStart));
    }
    if (this.#last.size === 0) return undefined;
    let total = 0;
    for (const v of this.#last.values()) total += v;
    return total;
  }
}

/** `usage_usec` of a cgroup v2 cpu.stat, in seconds; undefined when the text has none. */
export function parseCgroupCpuStat(text: string): number | undefined {
  const match = /^usage_usec\s+(\d+)\s*$/m.exec(text);
  return match === null ? undefined : Number(match[1]) / 1e6;
}

/** A cgroup's CPU time so far (v2 cpu.stat, else v1 cpuacct.usage in ns); undefined when unreadable. */
export async function cgroupCpuSeconds(dir: string): Promise<number | undefined> {
  const v2 = await readFile(join(dir, "cpu.stat"), "utf8").catch(() => undefined);
  if (v2 !== undefined) return parseCgroupCpuStat(v2);
  const v1 = await readFile(join(dir, "cpuacct.usage"), "utf8").catch(() => undefined);
  return v1 !== undefined && /^\d+\s*$/.test(v1) ? Number(v1) / 1e9 : undefined;
}
