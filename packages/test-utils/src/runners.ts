import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { tempDir } from "./processes.ts";

/*
 * What job runners need in tests: a Debian root filesystem for podman (built once with debootstrap,
 * kept under the repository's .cache/), and a PATH on which a program is missing, for an agent on a
 * machine without it.
 */

export const PODMAN_ROOTFS_DIR = resolve(import.meta.dirname, "../../../.cache/podman-rootfs");
export const PODMAN_ROOTFS = join(PODMAN_ROOTFS_DIR, "debian-minbase");

/** Whether this machine can run podman jobs from a debootstrap rootfs. */
export const podmanInstalled = existsSync("/usr/bin/podman") && existsSync("/usr/sbin/debootstrap");

/** The suite and mirror this machine's apt uses, so debootstrap fetches from where apt does. */
export function aptSource(): { suite: string; mirror: string } {
  const release = readFileSync("/etc/os-release", "utf8");
  const suite = /^VERSION_CODENAME=(\S+)$/m.exec(release)?.[1] ?? "bookworm";
  const sources = ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]
    .filter(existsSync)
    .map((p) => readFileSync(p, "utf8"))
    .join("\n");
  const mirror =
    /^URIs:\s*(\S+\/debian)\s*$/m.exec(sources)?.[1] ??
    /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s/m.exec(sources)?.[1] ??
    "http://deb.debian.org/debian";
  return { suite, mirror };
}

/** A minimal Debian root filesystem, built once: into a scratch folder, renamed when whole. */
export function ensureRootfs(): string {
  if (existsSync(join(PODMAN_ROOTFS, "bin/sh"))) return PODMAN_ROOTFS;
  mkdirSync(PODMAN_ROOTFS_DIR, { recursive: true });
  const scratch = `${PODMAN_ROOTFS}.partial`;
  rmSync(scratch, { recursive: true, force: true });
  const { suite, mirror } = aptSource();
  const started = Date.now();
  execFileSync("debootstrap", ["--variant=minbase", suite, scratch, mirror], { stdio: "ignore" });
  renameSync(scratch, PODMAN_ROOTFS);
  console.log(`debootstrap --variant=minbase ${suite}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return PODMAN_ROOTFS;
}

/** This agent's podman options on this VM (jobs.podman in its config). */
export function testPodmanOptions(): { runtime?: string; ulimits: string[] } {
  return {
    // This VM: crun refuses cgroup v1 with controllers on v2 (hugetlb), and the agent may not raise
    // its limits to podman's defaults (no CAP_SYS_RESOURCE), so runc and lower limits.
    ...(existsSync("/usr/sbin/runc") ? { runtime: "runc" } : {}),
    ulimits: ["nofile=4096:4096", "nproc=4096:4096"],
  };
}

/** A PATH with every program of this one but `program`: one folder of links to the others. */
export function pathWithout(program: string, path = process.env.PATH ?? "/usr/bin:/bin"): string {
  const dir = tempDir(`b9-no-${program}-`);
  const linked = new Set<string>([program]);
  for (const from of path.split(":")) {
    if (from === "" || !existsSync(from)) continue;
    for (const name of readdirSync(from)) {
      // The first of a name on PATH is the one found, as the shell would.
      if (linked.has(name)) continue;
      linked.add(name);
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}
