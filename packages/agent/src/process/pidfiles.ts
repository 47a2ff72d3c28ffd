import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { commandMatches, type ProcessIdentity, readProcessIdentity } from "./identity.ts";
import { isAlive, signalProcessTree } from "./signals.ts";

/** One process the agent started (an engine, a job), as written to disk. */
export interface PidRecord {
  pid: number;
  startTime: string;
  /** The argument vector we spawned (program first), without any setpriv prefix. */
  command: string[];
  /** The process leads its own process group; killing it means killing the group (vLLM's workers, a job's children). */
  group: boolean;
  recordedAt: string;
}

export interface SweepResult {
  /** Leftover processes that were still running and were killed. */
  killed: number[];
  /** Records whose pid now belongs to another process (or is gone): the record is dropped, the process spared. */
  spared: number[];
}

type Identify = (pid: number) => Promise<ProcessIdentity | null>;

/**
 * A directory of JSON files, one per process the agent started. If the agent is killed without a
 * chance to stop its children (and the kernel's parent-death signal is not available), the
 * next agent sweeps this directory at start-up and kills what is left — but only a process whose
 * pid, start time and command all still match, so a reused pid is never killed.
 */
export class PidfileRegistry {
  readonly dir: string;
  readonly #identify: Identify;

  constructor(dir: string, options: { identify?: Identify } = {}) {
    this.dir = dir;
    this.#identify = options.identify ?? ((pid) => readProcessIdentity(pid));
  }

  #file(pid: number): string {
    return join(this.dir, `${pid}.json`);
  }

  /** Records a process that was just spawned; null when it is already gone. */
  async record(pid: number, command: readonly string[], group: boolean): Promise<PidRecord | null> {
    const identity = await this.#identify(pid);
    if (identity === null) return null;
    const record: PidRecord = {
      pid,
      startTime: identity.startTime,
      command: [...command],
      group,
      recordedAt: new Date().toISOString(),
    };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFile(this.#file(pid), `${JSON.stringify(record)}\n`, { mode: 0o600 });
    return record;
  }

  async remove(pid: number): Promise<void> {
    await rm(this.#file(pid), { force: true });
  }

  async list(): Promise<PidRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const records: PidRecord[] = [];
    for (const name of names) {
      if (!name.endsWith(".json")) continue;
      try {
        const parsed = JSON.parse(await readFile(join(this.dir, name), "utf8")) as Partial<PidRecord>;
        if (
          typeof parsed.pid === "number" &&
          typeof parsed.startTime === "string" &&
          Array.isArray(parsed.command) &&
          parsed.command.every((part) => typeof part === "string")
        ) {
          records.push({
            pid: parsed.pid,
            startTime: parsed.startTime,
            command: parsed.command,
            group: parsed.group === true,
            recordedAt: typeof parsed.recordedAt === "string" ? parsed.recordedAt : "",
          });
          continue;
        }
      } catch {
        // unreadable: dropped below
      }
      await rm(join(this.dir, name), { force: true });
    }
    return records;
  }

  /** Whether the process a record names is still that very process. */
  async stillRunning(record: PidRecord): Promise<boolean> {
    const now = await this.#identify(record.pid);
    return now !== null && now.startTime === record.startTime && commandMatches(record.command, now.argv);
  }

  /** Kills processes a previous agent left behind (SIGTERM, then SIGKILL after the grace) and clears the directory. */
  async sweep(options: { graceMs?: number } = {}): Promise<SweepResult> {
    const graceMs = options.graceMs ?? 5_000;
    const result: SweepResult = { killed: [], spared: [] };
    const victims: PidRecord[] = [];
    for (const record of await this.list()) {
      if (await this.stillRunning(record)) victims.push(record);
      else {
        result.spared.push(record.pid);
        await this.remove(record.pid);
      }
    }
    for (const victim of victims) signalProcessTree(victim.pid, victim.group, "SIGTERM");
    const until = Date.now() + graceMs;
    while (victims.some((v) => isAlive(v.pid)) && Date.now() < until) await delay(50);
    for (const victim of victims) {
      // POSIX keeps a pid from reuse while its process group lives, so the group may be killed even
      // after its leader exited; a lone process only while it is still the one we recorded.
      if (victim.group) signalProcessTree(victim.pid, true, "SIGKILL");
      else if (isAlive(victim.pid) && (await this.stillRunning(victim))) {
        signalProcessTree(victim.pid, false, "SIGKILL");
      }
      result.killed.push(victim.pid);
      await this.remove(victim.pid);
    }
    return result;
  }
}
