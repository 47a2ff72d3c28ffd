import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { nodeFiles } from "./host.ts";
import { isDisplayDevice, parseLspci, readDrmCards, sameSlot } from "./pci.ts";
import { fakeSysfs } from "./testing/sysfs.ts";

const recorded = (name: string) =>
  readFileSync(new URL(`../../testdata/hardware/${name}`, import.meta.url), "utf8");

describe("lspci", () => {
  it("reads display controllers from a recorded `lspci -d ::03xx` (Alder Lake iGPU + RTX 3080 Ti)", () => {
    const devices = parseLspci(recorded("lspci-display-alderlake-rtx3080ti.txt"));
    expect(devices).toEqual([
      { slot: "00:02.0", className: "Display controller", description: "Intel Corporation AlderLake-S GT1" },
      {
        slot: "01:00.0",
        className: "VGA compatible controller",
        description: "NVIDIA Corporation GA102 [GeForce RTX 3080 Ti]",
      },
    ]);
  });

  it("picks the one GPU out of a recorded full `lspci` listing (Comet Lake-U laptop)", () => {
    const devices = parseLspci(recorded("lspci-cometlake-u.txt"));
    expect(devices).toHaveLength(14);
    expect(devices.filter(isDisplayDevice)).toEqual([
      {
        slot: "00:02.0",
        className: "VGA compatible controller",
        description: "Intel Corporation CometLake-U GT2 [UHD Graphics]",
      },
    ]);
  });

  it("documented format: -nn class codes and domains", () => {
    const [device] = parseLspci(
      "0000:03:00.0 VGA compatible controller [0300]: Intel Corporation DG2 [Arc A770] [8086:56a0] (rev 08)",
    );
    expect(device).toMatchObject({ slot: "0000:03:00.0", className: "VGA compatible controller" });
    expect(sameSlot(device!.slot, "03:00.0")).toBe(true);
  });

  it("throws a clear error on garbage and returns nothing for empty output", () => {
    expect(() => parseLspci("pcilib: Cannot open /proc/bus/pci")).toThrow(/no device lines/);
    expect(parseLspci("")).toEqual([]);
  });
});

describe("DRM cards in sysfs", () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it("lists cards with their PCI ids and slot, skipping connectors and render nodes", async () => {
    root = await fakeSysfs({
      card1: { vendor: "0x10de", device: "0x2684", slot: "0000:01:00.0" },
      card0: { vendor: "0x8086", device: "0x4680", slot: "0000:00:02.0" },
    });
    expect(await readDrmCards(nodeFiles, root)).toEqual([
      { card: "card0", vendorId: "0x8086", deviceId: "0x4680", slot: "0000:00:02.0" },
      { card: "card1", vendorId: "0x10de", deviceId: "0x2684", slot: "0000:01:00.0" },
    ]);
  });

  it("finds nothing where there is no sysfs (macOS, containers)", async () => {
    expect(await readDrmCards(nodeFiles, "/nonexistent-sysfs")).toEqual([]);
  });

  it("skips cards whose id files hold garbage", async () => {
    root = await fakeSysfs({ card0: { vendor: "intel", device: "?" } });
    expect(await readDrmCards(nodeFiles, root)).toEqual([]);
  });
});
