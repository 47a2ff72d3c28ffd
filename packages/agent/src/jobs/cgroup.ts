import { mkdir, readdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

/*
 * A memory-limited cgroup per job, where the agent may make one: cgroup v2 (memory.max, OOM kills
 * counted in memory.events) when the memory controller can be enabled below the agent's own cgroup,
 * else a cgroup v1 memory hierarchy (memory.limit_in_bytes, memory.oom_control). The cgroup is also
 * how everything a job started is found and killed, whatever sessions or groups it made.
 */

export interface JobCgroup {
  readonly path: string;
  readonly version: 1 | 2;
  /** Its path below the hierarchy's root ("/…/b9-jobs/NAME"): what podman's --cgroup-parent takes. */
  readonly relative: string;
  /** The file a process writes its pid to, to join. */
  readonly procs: string;
  /** Whether the kernel killed something in it for want of memory. */
  oomKilled(): Promise<boolean>;
  /**
   * Whether its memory limit was hit, in it or in cgroups below it (v1 counts OOM kills only in the
   * victim's own cgroup, which podman removes with its container).
   */
  limitHit(): Promise<boolean>;
  /** SIGKILL everything in it, wait until it is empty, and remove it. */
  destroy(): Promise<void>;
}

const V2_ROOT = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
/** Where cgroup hierarchies are mounted: v2 at the top, or one folder per v1 hierarchy. */
const CGROUP_MOUNT = "/sys/fs/cgroup";
const V1_MEMORY = "/sys/fs/cgroup/memory";

async function read(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return null;
  }
}

/** The agent's own cgroup v2 directory, when a v2 hierarchy with the memory controller is mounted. */
async function v2Parent(): Promise<string | null> {
  const self = await read("/proc/self/cgroup");
  const rel = self
    ?.split("\n")
    .find((l) => l.startsWith("0::"))
    ?.slice(3);
  if (rel === undefined) return null;
  for (const root of V2_ROOT) {
    const dir = join(root, rel);
    const controllers = await read(join(dir, "cgroup.controllers"));
    if (controllers?.split(/\s+/).includes("memory")) return dir;
  }
  return null;
}

async function v1Parent(): Promise<string | null> {
  const self = await read("/proc/self/cgroup");
  const rel = self
    ?.split("\n")
    .map((l) => l.split(":"))
    .find((f) => f[1]?.split(",").includes("memory"))?.[2];
  if (rel === undefined) return null;
  const dir = join(V1_MEMORY, rel);
  return (await read(join(dir, "memory.limit_in_bytes"))) === null ? null : dir;
}

function pids(text: string | null): number[] {
  return (text ?? "")
    .split("\n")
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

/** A fresh cgroup for a job, limited to `memoryBytes` (null: no limit); throws with the reason when none can be made. */
export async function createJobCgroup(name: string, memoryBytes: number | null): Promise<JobCgroup> {
  const problems: string[] = [];
  const v2 = await v2Parent();
  if (v2 !== null) {
    try {
      // A process may not sit in a cgroup that enables controllers for children ("no internal
      // processes"), so jobs get a sibling subtree of their own, b9-jobs, with memory enabled.
      const parent = join(v2, "b9-jobs");
      await mkdir(parent, { recursive: true });
      await writeFile(join(v2, "cgroup.subtree_control"), "+memory").catch(() => {});
      await writeFile(join(parent, "cgroup.subtree_control"), "+memory");
      const path = join(parent, name);
      await mkdir(path);
      if (memoryBytes !== null) {
        await writeFile(join(path, "memory.max"), String(memoryBytes));
        await writeFile(join(path, "memory.swap.max"), "0").catch(() => {});
      }
      return v2Cgroup(path, path.slice(v2.length - rel2(v2).length));
    } catch (error) {
      problems.push(`cgroup v2: ${(error as Error).message}`);
    }
  } else problems.push("no cgroup v2 hierarchy with the memory controller");
  const v1 = await v1Parent();
  if (v1 !== null) {
    try {
      const path = join(v1, "b9-jobs", name);
      await mkdir(path, { recursive: true });
      if (memoryBytes !== null) {
        await writeFile(join(path, "memory.limit_in_bytes"), String(memoryBytes));
        // Where swap is accounted, memory+swap gets the same limit, so the job cannot swap past it.
        await writeFile(join(path, "memory.memsw.limit_in_bytes"), String(memoryBytes)).catch(() => {});
      }
      return v1Cgroup(path, path.slice(V1_MEMORY.length));
    } catch (error) {
      problems.push(`cgroup v1: ${(error as Error).message}`);
    }
  } else problems.push("no cgroup v1 memory hierarchy");
  throw new Error(problems.join("; "));
}

/** The agent's v2 cgroup below its hierarchy's root. */
function rel2(dir: string): string {
  const root = V2_ROOT.filter((r) => dir === r || dir.startsWith(`${r}/`)).sort(
    (x, y) => y.length - x.length,
  )[0];
  return dir.slice((root ?? "").length);
}

function v2Cgroup(path: string, relative: string): JobCgroup {
  return {
    path,
    version: 2,
    relative,
    procs: join(path, "cgroup.procs"),
    async oomKilled() {
      const events = await read(join(path, "memory.events"));
      return Number(/^oom_kill (\d+)/m.exec(events ?? "")?.[1] ?? 0) > 0;
    },
    async limitHit() {
      // memory.events counts what happened below too (memory.events.local would not).
      const events = await read(join(path, "memory.events"));
      return Number(/^(?:max|oom_kill) (\d+)/m.exec(events ?? "")?.[1] ?? 0) > 0;
    },
    async destroy() {
      await writeFile(join(path, "cgroup.kill"), "1").catch(() => {});
      await emptyThenRemove(path);
    },
  };
}

function v1Cgroup(path: string, relative: string): JobCgroup {
  return {
    path,
    version: 1,
    relative,
    procs: join(path, "cgroup.procs"),
    async oomKilled() {
      const control = await read(join(path, "memory.oom_control"));
      return Number(/^oom_kill (\d+)/m.exec(control ?? "")?.[1] ?? 0) > 0;
    },
    async limitHit() {
      // Neither the OOM kill nor failcnt is counted here for a kill below; the peak usage is.
      const [limit, peak] = await Promise.all(
        ["memory.limit_in_bytes", "memory.max_usage_in_bytes"].map(async (f) =>
          Number(await read(join(path, f))),
        ),
      );
      return Number.isFinite(limit) && Number(peak) + 1024 * 1024 >= (limit as number);
    },
    async destroy() {
      await emptyThenRemove(path);
    },
  };
}

/** Kill what is left (v1 has no cgroup.kill: each pid, until none is left), then remove the cgroup. */
async function emptyThenRemove(path: string): Promise<void> {
  const until = Date.now() + 10_000;
  for (;;) {
    const left = pids(await read(join(path, "cgroup.procs")));
    if (left.length === 0) break;
    if (Date.now() > until) throw new Error(`processes ${left.join(", ")} are still in ${path}`);
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await delay(20);
  }
  await rmdir(path).catch(() => {});
}

/**
 * Cgroups a previous run of this agent left (it died mid-job): everything in them is killed, they
 * are removed. Only names that start with `prefix` (this agent's, see containerPrefix): another agent
 * on the same host keeps its running jobs.
 */
export async function sweepJobCgroups(prefix: string): Promise<void> {
  const v2 = await v2Parent();
  const v1 = await v1Parent();
  const parents = [
    ...(v2 === null ? [] : [{ parent: v2, relative: rel2(v2) }]),
    ...(v1 === null ? [] : [{ parent: v1, relative: v1.slice(V1_MEMORY.length) }]),
  ];
  for (const { parent, relative } of parents) {
    const dir = join(parent, "b9-jobs");
    let names: string[] = [];
    try {
      names = (await readdir(dir, { withFileTypes: true }))
        .filter((d) => d.isDirectory() && d.name.startsWith(prefix))
        .map((d) => d.name);
    } catch {
      continue;
    }
    // With what podman made below them (its container's and conmon's cgroups) in every hierarchy.
    for (const name of names) await removeCgroupTrees(`${relative}/b9-jobs/${name}`).catch(() => {});
  }
}

/**
 * Removes `relative` and every cgroup below it in each hierarchy (podman makes its own below a
 * --cgroup-parent, in every v1 controller, and leaves some), killing what is still in them.
 */
export async function removeCgroupTrees(relative: string): Promise<void> {
  const roots = [
    CGROUP_MOUNT,
    ...(await readdir(CGROUP_MOUNT).catch(() => [] as string[])).map((n) => join(CGROUP_MOUNT, n)),
  ];
  const remove = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => null);
    if (entries === null) return;
    for (const e of entries) if (e.isDirectory()) await remove(join(dir, e.name));
    await emptyThenRemove(dir).catch(() => {});
  };
  // Only a job's own cgroup: never a tree of the agent's or anyone else's.
  if (!/\/b9-jobs\/[^/]+$/.test(relative)) throw new Error(`${relative} is not a job's cgroup`);
  for (const root of roots) await remove(join(root, relative));
}
