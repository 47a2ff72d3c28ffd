/**
 * Signals to a process the agent started, and to every process it forked: each child leads a
 * process group of its own (child.ts), so one signal to the group reaches them all.
 */

/** Signals a process group (or one process); a process already gone is not an error. */
export function signalProcessTree(pid: number, group: boolean, signal: NodeJS.Signals): void {
  try {
    process.kill(group ? -pid : pid, signal);
  } catch (error) {
    // ESRCH: already gone. A group kill can fail where the leader is not a group leader; try the pid.
    if (group && (error as NodeJS.ErrnoException).code !== "ESRCH") signalProcessTree(pid, false, signal);
  }
}

/** Whether a process with this pid exists (one of another user's counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
