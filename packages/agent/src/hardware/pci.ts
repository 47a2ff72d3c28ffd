/** A display-class PCI function as the kernel's DRM subsystem lists it under /sys/class/drm. */
export interface DrmCard {
  /** "card0" */
  card: string;
  /** PCI vendor id, lower-case hex with 0x: "0x8086". */
  vendorId: string;
  deviceId: string;
  /** PCI address "0000:00:02.0", when the kernel reported one. */
  slot?: string;
}

/** Read-only file access, injected so tests can point at a directory tree of their own. */
export interface FileReader {
  readFile(path: string): Promise<string | null>;
  listDir(path: string): Promise<string[]>;
}

const HEX_ID = /^0x[0-9a-f]{4}$/;

/** Lists /sys/class/drm/card*, skipping connectors ("card0-HDMI-A-1") and unreadable entries. */
export async function readDrmCards(files: FileReader, sysRoot = "/sys"): Promise<DrmCard[]> {
  const base = `${sysRoot}/class/drm`;
  const names = (await files.listDir(base)).filter((name) => /^card\d+$/.test(name));
  const cards = await Promise.all(
    names.map(async (card): Promise<DrmCard | undefined> => {
      const device = `${base}/${card}/device`;
      const [vendor, deviceId, uevent] = await Promise.all([
        files.readFile(`${device}/vendor`),
        files.readFile(`${device}/device`),
        files.readFile(`${device}/uevent`),
      ]);
      const vendorId = vendor?.trim().toLowerCase() ?? "";
      const id = deviceId?.trim().toLowerCase() ?? "";
      if (!HEX_ID.test(vendorId) || !HEX_ID.test(id)) return undefined;
      const slot = /^PCI_SLOT_NAME=(.+)$/m.exec(uevent ?? "")?.[1]?.trim();
      return slot === undefined ? { card, vendorId, deviceId: id } : { card, vendorId, deviceId: id, slot };
    }),
  );
  return cards
    .filter((card) => card !== undefined)
    .sort((a, b) => Number(a.card.slice(4)) - Number(b.card.slice(4)));
}

/** One line of plain `lspci` output. */
export interface LspciDevice {
  /** "00:02.0", or "0000:00:02.0" when lspci prints domains. */
  slot: string;
  /** "VGA compatible controller", "3D controller", "Display controller", ... */
  className: string;
  /** Vendor and device, revision removed: "Intel Corporation CometLake-U GT2 [UHD Graphics]". */
  description: string;
}

const LSPCI_LINE =
  /^((?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\s+([^:]+?)(?:\s+\[[0-9a-f]{4}\])?:\s+(.+)$/i;
const DISPLAY_CLASSES = ["vga compatible controller", "3d controller", "display controller"];

/** Parses plain `lspci` output (one device per line). Throws on text that has no device lines. */
export function parseLspci(text: string): LspciDevice[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length === 0) return [];
  const devices: LspciDevice[] = [];
  for (const line of lines) {
    const match = LSPCI_LINE.exec(line.trim());
    if (match === null) continue;
    const description = match[3]!
      .replace(/\s+\(prog-if [^)]*\)/, "")
      .replace(/\s+\(rev [0-9a-f]+\)$/i, "")
      .trim();
    devices.push({ slot: match[1]!.toLowerCase(), className: match[2]!, description });
  }
  if (devices.length === 0) {
    throw new Error(`lspci output has no device lines: ${JSON.stringify(text.trim().slice(0, 200))}`);
  }
  return devices;
}

export function isDisplayDevice(device: LspciDevice): boolean {
  return DISPLAY_CLASSES.includes(device.className.toLowerCase());
}

/** Compares "0000:00:02.0" (sysfs) with "00:02.0" (lspci without domains). */
export function sameSlot(a: string, b: string): boolean {
  const short = (slot: string) => slot.toLowerCase().replace(/^0000:/, "");
  return short(a) === short(b);
}
