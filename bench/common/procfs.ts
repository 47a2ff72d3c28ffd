/**
 * What a bench reads about processes from /proc and ps: CPU time, start time, memory, descendants.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/<pid>/stat after the command name: [0] is field 3 (state). */
function statFields(pid: number): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * CPU time of a process in ms: the sum of its threads' /proc/<pid>/task/<tid>/schedstat (ns), else
 * utime + stime from /proc/<pid>/stat (CLK_TCK resolution, usually 10 ms). NaN once it has gone.
 */
export function cpuMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {} // the thread just ended
    }
    if (ns > 0) return ns / 1e6;
  } catch {}
  try {
    const f = statFields(pid);
    return ((Number(f[11]) + Number(f[12])) / CLK_TCK) * 1000;
  } catch {
    return Number.NaN;
  }
}

/** When a process started, as epoch ms (CLK_TCK resolution): its starttime against /proc/uptime now. */
export function startedAtMs(pid: number): number {
  const startS = Number(statFields(pid)[19]) / CLK_TCK;
  const uptimeS = Number(fs.readFileSync("/proc/uptime", "utf8").split(" ")[0]);
  return Date.now() - (uptimeS - startS) * 1000;
}

/** A field of /proc/<pid>/status in kB (VmRSS, RssAnon, VmHWM...); NaN when absent or gone. */
export function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(
      fs.readFileSync(`/proc/${pid}/status`, "utf8"),
    );
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A process and all its descendants, from one `ps` listing. */
export function processTree(root: number): number[] {
  const rows = execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of rows) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

/** The direct children of a process with their command lines. */
export function children(pid: number): { pid: number; args: string }[] {
  let text = "";
  try {
    text = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when there are none
  }
  return text
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), args: m[2]! }));
}
