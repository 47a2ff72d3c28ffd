import { ip } from "./ip.ts";
import { NAMESPACE_PREFIX } from "./network.ts";

/** The processes that run in a namespace (ours: only tests start processes there). */
function pidsIn(ns: string): number[] {
  try {
    return ip(["netns", "pids", ns])
      .split("\n")
      .map((l) => Number(l.trim()))
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

/**
 * SIGKILL every process left in the namespaces, then delete them (their veths and bridge go with
 * them). Never throws: it runs after failed tests too, and whatever it cannot remove the next run's
 * stale sweep will.
 */
export function removeNamespaces(names: readonly string[]): void {
  for (const ns of names) {
    for (const pid of pidsIn(ns)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  for (const ns of names) {
    try {
      ip(["netns", "del", ns]);
    } catch {}
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Remove the namespaces of clusters whose test process is gone (a run that crashed or was killed). */
export function sweepStaleNamespaces(): string[] {
  let listed: string;
  try {
    listed = ip(["netns", "list"]);
  } catch {
    return [];
  }
  const stale: string[] = [];
  for (const line of listed.split("\n")) {
    const ns = line.trim().split(/\s+/)[0] ?? "";
    if (!ns.startsWith(NAMESPACE_PREFIX)) continue;
    const pid = Number(ns.slice(NAMESPACE_PREFIX.length).split("-")[0]);
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) stale.push(ns);
  }
  removeNamespaces(stale);
  return stale;
}
