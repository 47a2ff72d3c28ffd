import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";

/**
 * What tells one process apart from a later one that got the same pid: when it started and what it
 * runs. A pid alone is never enough to kill by — pids are reused.
 */
export interface ProcessIdentity {
  /** Linux: field 22 of /proc/<pid>/stat (clock ticks since boot); elsewhere `ps -o lstart`. */
  startTime: string;
  /** Linux: /proc/<pid>/cmdline split on NUL; elsewhere one element, `ps -o command`. */
  argv: string[];
}

/** Parses /proc/<pid>/stat; the command name in parentheses may itself contain spaces and parentheses. */
export function parseProcStatStartTime(stat: string): string | null {
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  // After "pid (comm) " come fields 3.. ; starttime is field 22, so index 19 here.
  const fields = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const start = fields[19];
  return start !== undefined && /^\d+$/.test(start) ? start : null;
}

export function parseProcCmdline(cmdline: string): string[] {
  return cmdline.split("\0").filter((part, i, all) => part !== "" || i < all.length - 1);
}

function ps(field: string, pid: number): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(
      "ps",
      ["-o", `${field}=`, "-p", String(pid)],
      { timeout: 5_000, encoding: "utf8", env: { ...process.env, LC_ALL: "C" } },
      (error, stdout) => resolve(error === null && stdout.trim() !== "" ? stdout.trim() : null),
    );
  });
}

/** The identity of a live process, or null when there is no such process (or it cannot be read). */
export async function readProcessIdentity(
  pid: number,
  platform: NodeJS.Platform = process.platform,
  procRoot = "/proc",
): Promise<ProcessIdentity | null> {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  if (platform === "linux") {
    try {
      const [stat, cmdline] = await Promise.all([
        readFile(`${procRoot}/${pid}/stat`, "utf8"),
        readFile(`${procRoot}/${pid}/cmdline`, "utf8"),
      ]);
      const startTime = parseProcStatStartTime(stat);
      return startTime === null ? null : { startTime, argv: parseProcCmdline(cmdline) };
    } catch {
      return null;
    }
  }
  const [startTime, command] = await Promise.all([ps("lstart", pid), ps("command", pid)]);
  return startTime === null || command === null ? null : { startTime, argv: [command] };
}

/**
 * Whether a running process still runs the command we recorded. Its command line may be longer
 * than what we spawned: `setpriv … --` before it, or a script's interpreter (the kernel shows
 * `/usr/bin/python3 /usr/local/bin/vllm serve …` for `vllm serve …`). So: our arguments must end
 * its command line, and our program's name must appear before them.
 */
export function commandMatches(recorded: readonly string[], current: readonly string[]): boolean {
  const [program, ...args] = recorded;
  if (program === undefined || current.length === 0) return false;
  const name = basename(program);
  if (current.length === 1 && recorded.length > 1) {
    // `ps -o command` gives one string: compare as text.
    const line = current[0] ?? "";
    const tail = args.join(" ");
    if (!line.endsWith(tail)) return false;
    return line
      .slice(0, line.length - tail.length)
      .split(/\s+/)
      .some((word) => word !== "" && basename(word) === name);
  }
  if (current.length < recorded.length) return false;
  const offset = current.length - args.length;
  for (let i = 0; i < args.length; i++) if (current[offset + i] !== args[i]) return false;
  return current.slice(0, offset).some((word) => basename(word) === name);
}
