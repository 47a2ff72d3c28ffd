import type { Gpu } from "@beta9/protocol";
import { type DrmCard, isDisplayDevice, type LspciDevice, sameSlot } from "./pci.ts";

export const INTEL_PCI_VENDOR = "0x8086";

/**
 * Intel GPUs from the DRM cards the kernel lists, named by lspci when it is installed.
 * An integrated GPU (PCI bus 00) shares the machine's RAM. A discrete Arc card's VRAM size is not
 * exposed in a stable sysfs file, so it is reported as 0 (unknown). The builtin engine drives
 * Intel GPUs through Vulkan.
 */
export function intelGpus(
  cards: readonly DrmCard[],
  lspci: readonly LspciDevice[],
  systemMemoryBytes: number,
): Gpu[] {
  const gpus: Gpu[] = [];
  const seen = new Set<string>();
  for (const card of cards) {
    if (card.vendorId !== INTEL_PCI_VENDOR) continue;
    const key = card.slot ?? card.card;
    if (seen.has(key)) continue;
    seen.add(key);
    const listed =
      card.slot === undefined
        ? undefined
        : lspci.find((device) => isDisplayDevice(device) && sameSlot(device.slot, card.slot!));
    const name = listed?.description.replace(/^Intel Corporation\s+/, "Intel ");
    const integrated = card.slot !== undefined && /^(?:[0-9a-f]{4}:)?00:/i.test(card.slot);
    gpus.push({
      index: gpus.length,
      vendor: "intel",
      name: name ?? `Intel GPU [8086:${card.deviceId.slice(2)}]`,
      memory_total_bytes: integrated ? systemMemoryBytes : 0,
      unified_memory: integrated,
      backend: "vulkan",
    });
  }
  return gpus;
}
