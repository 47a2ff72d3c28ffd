import { readdir } from "node:fs/promises";
import { join } from "node:path";

/*
 * How a job's command is run: `bwrap` (Linux with bubblewrap) or `native` (a plain child in the job
 * directory: macOS, or Linux without bubblewrap); `podman` (podman.ts) for a job that names a rootfs
 * or an image. Only the argument vector is built here; the process itself is started and stopped by
 * process/ like every other child of the agent.
 */

export type RunnerName = "bwrap" | "native" | "podman";

/** Where the job's directory appears inside the sandbox: the same for every job, short in logs. */
export const SANDBOX_JOB_DIR = "/job";

/** System folders bound read-only into the sandbox, where they exist. */
const SYSTEM_DIRS = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/opt"];

export interface SandboxSpec {
  /** The job's own directory on the host: the only writable place. */
  jobDir: string;
  /** Host folders the job reads (its Python environment and the interpreter it links to). */
  readOnly: readonly string[];
  /** /dev entries to bind (`nvidia*`, `kfd`, `dri`), from gpuDeviceGlobs; none for a CPU job. */
  devices: readonly string[];
  command: readonly string[];
  /** The agent runs as root: the job is switched to this unprivileged uid/gid inside. */
  root: { uid: number; gid: number; setpriv: string } | null;
}

/** /dev entries matching the wanted prefixes ("nvidia" matches nvidia0, nvidiactl, nvidia-uvm…). */
export async function gpuDeviceNodes(prefixes: readonly string[], devDir = "/dev"): Promise<string[]> {
  if (prefixes.length === 0) return [];
  const names = await readdir(devDir).catch(() => [] as string[]);
  return names
    .filter((n) => prefixes.some((p) => (p === "nvidia" ? n.startsWith("nvidia") : n === p)))
    .map((n) => join(devDir, n));
}

/**
 * bwrap's arguments: new pid, net, ipc and uts namespaces (no network: only a loopback of its own),
 * system folders read-only, a private /tmp, the job directory writable at /job, GPU device nodes
 * only when given, all capabilities dropped and an unprivileged uid. As root, bwrap needs no user
 * namespace and switches the command to `root.uid` with setpriv (clearing groups and every
 * capability set); as a user, a user namespace maps the agent's own uid.
 */
export function bwrapArgs(spec: SandboxSpec, existing: (path: string) => boolean): string[] {
  const args = [
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--hostname",
    "b9-job",
  ];
  if (spec.root === null) args.push("--unshare-user", "--cap-drop", "ALL");
  for (const dir of SYSTEM_DIRS.filter(existing)) args.push("--ro-bind", dir, dir);
  args.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp");
  const system = SYSTEM_DIRS.filter(existing);
  const within = (path: string, dirs: readonly string[]) =>
    dirs.some((d) => path === d || path.startsWith(`${d}/`));
  const made = new Set(["/", "/tmp", "/proc", "/dev"]);
  for (const dir of spec.readOnly) {
    // Already there with the system folders (an interpreter in /usr).
    if (within(dir, system)) continue;
    // Folders above it readable by all: bwrap would make them 0700, closed to the job's uid.
    const parts = dir.split("/").filter((p) => p !== "");
    for (let i = 1; i < parts.length; i++) {
      const above = `/${parts.slice(0, i).join("/")}`;
      if (made.has(above)) continue;
      made.add(above);
      args.push("--perms", "0755", "--dir", above);
    }
    args.push("--ro-bind", dir, dir);
  }
  for (const node of spec.devices) args.push("--dev-bind", node, node);
  // The job's environment is bwrap's own, passed through: never on a command line other users can read.
  args.push("--bind", spec.jobDir, SANDBOX_JOB_DIR, "--chdir", SANDBOX_JOB_DIR, "--");
  if (spec.root !== null) {
    args.push(
      spec.root.setpriv,
      `--reuid=${spec.root.uid}`,
      `--regid=${spec.root.gid}`,
      "--clear-groups",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--",
    );
  }
  args.push(...spec.command);
  return args;
}
