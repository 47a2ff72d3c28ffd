import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { realpath, stat } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { promisify } from "node:util";
import { Beta9Error, type CreateJob } from "@beta9/protocol";
import { SANDBOX_JOB_DIR } from "./sandbox.ts";

/*
 * The podman runner: a job that names a root filesystem (a directory the machine's owner allowed)
 * or an OCI image runs in a podman container. Only argument vectors are built here, and the
 * container is found again by a name made from the agent's home and the job id, so cancel, timeout
 * and a restarted agent can stop and remove it.
 */

const run = promisify(execFile);

/** What the machine's owner set under jobs.podman in the agent's config. */
export interface PodmanOptions {
  /** OCI runtime (podman --runtime): e.g. runc where crun cannot run (cgroup v1 with a v2 hugetlb). */
  runtime?: string | undefined;
  /** podman --cgroup-manager; default cgroupfs (an agent need not run under systemd). */
  cgroup_manager?: string | undefined;
  /** podman --storage-driver; default podman's own. */
  storage_driver?: string | undefined;
  /** --ulimit values ("nofile=4096:4096"): where the agent may not raise limits to podman's defaults. */
  ulimits?: string[] | undefined;
}

/** podman's options before the command: the same for run, stop, rm and ps, so they see one store. */
export function podmanGlobalArgs(o: PodmanOptions): string[] {
  return [
    "--cgroup-manager",
    o.cgroup_manager ?? "cgroupfs",
    // No journald needed: the agent keeps a job's logs itself.
    "--events-backend",
    "file",
    ...(o.runtime ? ["--runtime", o.runtime] : []),
    ...(o.storage_driver ? ["--storage-driver", o.storage_driver] : []),
  ];
}

/** The prefix of this agent's containers: another agent on the machine has another. */
export function containerPrefix(home: string): string {
  return `b9-${createHash("sha256").update(resolve(home)).digest("hex").slice(0, 8)}-`;
}

export interface PodmanRunSpec {
  name: string;
  /** The job's directory on the host, bound read-write at /job. */
  jobDir: string;
  /** Exactly one of these. */
  rootfs?: string | undefined;
  image?: string | undefined;
  /** Names of the job's variables: their values travel in podman's own environment, never in argv. */
  envNames: readonly string[];
  devices: readonly string[];
  /** As root: the unprivileged uid/gid the job runs as. */
  user: { uid: number; gid: number } | null;
  /** The job's cgroup (podman puts its container and conmon below it), or null. */
  cgroupParent: string | null;
  /** Used only where no cgroup could be made for the job. */
  memoryBytes: number | null;
  command: readonly string[];
}

export function podmanRunArgs(o: PodmanOptions, s: PodmanRunSpec): string[] {
  const args = [
    ...podmanGlobalArgs(o),
    "run",
    "--rm",
    "--name",
    s.name,
    // A small init as pid 1: SIGTERM reaches the job (pid 1 ignores signals it does not handle).
    "--init",
    "--network",
    "none",
    "--cap-drop",
    "all",
    "--security-opt",
    "no-new-privileges",
    "--read-only",
    "--hostname",
    "b9-job",
    "--volume",
    `${s.jobDir}:${SANDBOX_JOB_DIR}:rw`,
    "--workdir",
    SANDBOX_JOB_DIR,
  ];
  if (s.user !== null) args.push("--user", `${s.user.uid}:${s.user.gid}`);
  for (const u of o.ulimits ?? []) args.push("--ulimit", u);
  if (s.cgroupParent !== null) args.push("--cgroup-parent", s.cgroupParent);
  else if (s.memoryBytes !== null)
    args.push("--memory", String(s.memoryBytes), "--memory-swap", String(s.memoryBytes));
  for (const node of s.devices) args.push("--device", node);
  for (const name of s.envNames) args.push("--env", name);
  // An overlay (:O) over the owner's rootfs: the job's mount points and writes never land in it.
  if (s.rootfs !== undefined) args.push("--rootfs", `${s.rootfs}:O`);
  else args.push("--pull", "missing", s.image as string);
  args.push(...s.command);
  return args;
}

/**
 * Checks a job's podman part before anything runs: one of rootfs or image, no Python environment
 * (the rootfs or image brings its own), a rootfs inside jobs.rootfs_dirs both as written and after
 * links. Returns the rootfs's real path.
 */
export async function checkPodmanJob(
  spec: CreateJob,
  allowedDirs: readonly string[],
): Promise<string | undefined> {
  if (spec.rootfs !== undefined && spec.image !== undefined)
    throw new Beta9Error("bad_request", "a job names a rootfs or an image, not both");
  if (spec.environment !== undefined)
    throw new Beta9Error(
      "bad_request",
      "a job with a rootfs or an image brings its own Python: install packages into it instead of naming an environment",
    );
  if (spec.rootfs === undefined) return undefined;
  const notAllowed = (why: string) =>
    new Beta9Error(
      "path_not_allowed",
      `rootfs ${spec.rootfs} ${why}; a job's rootfs must be inside a directory listed under jobs.rootfs_dirs in the agent's config`,
    );
  const inside = (path: string, roots: readonly string[]) =>
    roots.some((root) => {
      const rel = relative(root, path);
      return rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
    });
  const lexical = resolve(spec.rootfs);
  const roots = allowedDirs.map((d) => resolve(d));
  if (!inside(lexical, roots)) throw notAllowed("is outside the allowed directories");
  const realRoots = (await Promise.all(roots.map((r) => realpath(r).catch(() => null)))).filter(
    (r): r is string => r !== null,
  );
  let real: string;
  try {
    real = await realpath(lexical);
  } catch {
    throw new Beta9Error("bad_request", `rootfs ${spec.rootfs} does not exist on this machine`);
  }
  if (!inside(real, realRoots)) throw notAllowed("leads outside the allowed directories");
  if (!(await stat(real)).isDirectory())
    throw new Beta9Error("bad_request", `rootfs ${spec.rootfs} is not a directory`);
  // podman's --rootfs PATH:O and --volume split on ':'.
  if (real.includes(":")) throw new Beta9Error("bad_request", `rootfs ${spec.rootfs} has a ':' in its path`);
  return real;
}

/** Runs a podman command with a deadline; its failure is reported, not thrown. */
export async function podman(
  podmanPath: string,
  o: PodmanOptions,
  args: readonly string[],
  timeoutMs = 30_000,
): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(podmanPath, [...podmanGlobalArgs(o), ...args], {
      timeout: timeoutMs,
      killSignal: "SIGKILL",
      maxBuffer: 1024 * 1024,
    });
    return { ok: true, stdout, stderr };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, stdout: e.stdout ?? "", stderr: e.stderr ?? e.message };
  }
}

/** Stops and removes every container a previous agent of this home left (it died mid-job). */
export async function sweepContainers(podmanPath: string, o: PodmanOptions, home: string): Promise<void> {
  const listed = await podman(podmanPath, o, [
    "ps",
    "--all",
    "--quiet",
    "--filter",
    `name=^${containerPrefix(home)}`,
  ]);
  const ids = listed.stdout.split("\n").filter((l) => /^[0-9a-f]+$/.test(l));
  if (ids.length > 0) await podman(podmanPath, o, ["rm", "--force", "--time", "0", ...ids]);
}
