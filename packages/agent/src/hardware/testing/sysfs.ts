import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Builds a sysfs-shaped tree: these files are constructed, not recorded. */
export async function fakeSysfs(cards: Record<string, { vendor: string; device: string; slot?: string }>) {
  const root = await mkdtemp(join(tmpdir(), "b9-sysfs-"));
  const drm = join(root, "class", "drm");
  await mkdir(drm, { recursive: true });
  // Connectors and render nodes sit beside the cards and must be skipped.
  await mkdir(join(drm, "card0-HDMI-A-1"));
  await mkdir(join(drm, "renderD128"));
  for (const [card, ids] of Object.entries(cards)) {
    const device = join(drm, card, "device");
    await mkdir(device, { recursive: true });
    await writeFile(join(device, "vendor"), `${ids.vendor}\n`);
    await writeFile(join(device, "device"), `${ids.device}\n`);
    if (ids.slot !== undefined)
      await writeFile(join(device, "uevent"), `DRIVER=i915\nPCI_SLOT_NAME=${ids.slot}\n`);
  }
  return root;
}
