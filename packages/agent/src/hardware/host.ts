import { readdir, readFile } from "node:fs/promises";
import os from "node:os";
import type { FileReader } from "./pci.ts";

/** The parts of the local machine that detection reads besides external tools; replaced in tests. */
export interface Host {
  platform: NodeJS.Platform;
  arch: string;
  cpus(): os.CpuInfo[];
  totalMemoryBytes(): number;
  freeMemoryBytes(): number;
  files: FileReader;
  /** Where sysfs is mounted; tests point it at a directory they built. */
  sysRoot: string;
  /** Where procfs is mounted. */
  procRoot: string;
}

export const nodeFiles: FileReader = {
  async readFile(path) {
    try {
      return await readFile(path, "utf8");
    } catch {
      return null;
    }
  },
  async listDir(path) {
    try {
      return await readdir(path);
    } catch {
      return [];
    }
  },
};

export function nodeHost(): Host {
  return {
    platform: process.platform,
    arch: process.arch,
    cpus: () => os.cpus(),
    totalMemoryBytes: () => os.totalmem(),
    freeMemoryBytes: () => os.freemem(),
    files: nodeFiles,
    sysRoot: "/sys",
    procRoot: "/proc",
  };
}
