import { execFileSync } from "node:child_process";
import { dirname } from "node:path";
import { tempDir, testModelPath } from "@beta9/test-utils";
import { ModelStore } from "../store.ts";

/** Only root may mount: tests that run out of disk skip elsewhere. */
export const canMountTmpfs = process.getuid?.() === 0;

/**
 * A model store on a file system of its own (tmpfs, `megabytes` big) holding the test model as
 * "smol" (its weights left in place): the honest way to run out of disk. Unmounted after `use`.
 */
export async function withSmallStore(
  megabytes: number,
  use: (store: ModelStore) => Promise<void>,
): Promise<void> {
  const dir = tempDir("b9-small-disk-");
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${megabytes}m`, "tmpfs", dir]);
  try {
    const store = new ModelStore({ dir, allowedDirs: [dirname(testModelPath())], localImport: "in-place" });
    await store.pull("smol", testModelPath());
    await use(store);
  } finally {
    execFileSync("umount", [dir]);
  }
}
