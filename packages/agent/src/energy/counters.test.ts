import { spawn } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { counterDelta } from "./counter.ts";
import { cpuRating, DEFAULT_WATTS_PER_THREAD, normalizeCpuModel } from "./cpu-rating.ts";
import { ProcessTreeCpu, parseCgroupCpuStat, parseProcStat } from "./cpu-time.ts";
import { findHwmonGpus, readHwmonMicro } from "./hwmon.ts";
import { RaplCounter } from "./rapl.ts";

/** A powercap tree with one package zone and a DRAM sub-zone (constructed, not recorded). */
async function fakeRapl(energyUj: number, rangeUj = 262143328850) {
  const root = await mkdtemp(join(tmpdir(), "b9-rapl-"));
  const zone = join(root, "intel-rapl:0");
  await mkdir(join(root, "intel-rapl:0:0"), { recursive: true });
  await mkdir(zone, { recursive: true });
  await writeFile(join(zone, "name"), "package-0\n");
  await writeFile(join(zone, "max_energy_range_uj"), `${rangeUj}\n`);
  await writeFile(join(zone, "energy_uj"), `${energyUj}\n`);
  await writeFile(join(root, "intel-rapl:0:0", "energy_uj"), "999999999\n");
  return { root, set: (uj: number) => writeFile(join(zone, "energy_uj"), `${uj}\n`) };
}

describe("energy counters", () => {
  it("counts a wrap once through the top, and calls a reset unknown rather than zero", () => {
    expect(counterDelta(100, 250)).toBe(150);
    expect(counterDelta(990, 10, 1000)).toBe(20);
    expect(counterDelta(500, 10)).toBeUndefined(); // backwards, no range known
    expect(counterDelta(900, 800, 1000)).toBeUndefined(); // backwards by a little: a reset, not a wrap
    expect(counterDelta(Number.NaN, 1)).toBeUndefined();
  });

  it("RAPL: reads package zones only, in joules, across a wrap and a reset", async () => {
    const rapl = await fakeRapl(262_000_000_000);
    const counter = await RaplCounter.open(rapl.root);
    expect(counter?.sources).toEqual(["rapl:package-0"]);
    await rapl.set(262_100_000_000);
    expect(await counter!.read()).toBeCloseTo(100, 3);
    await rapl.set(43_328_850); // wrapped at max_energy_range_uj: 43328850 + 43328850 µJ
    expect(await counter!.read()).toBeCloseTo(100 + 86.6577, 3);
    await rapl.set(10); // went back by most of the range: a reset, this interval unknown
    expect(await counter!.read()).toBeUndefined();
    await rapl.set(2_000_010);
    expect(await counter!.read()).toBeCloseTo(100 + 86.6577 + 2, 3);
  });

  it("RAPL: none where the folder is empty or energy_uj is unreadable", async () => {
    expect(await RaplCounter.open(await mkdtemp(join(tmpdir(), "b9-empty-")))).toBeUndefined();
    expect(await RaplCounter.open("/nonexistent/powercap")).toBeUndefined();
  });

  it("hwmon: an Intel GPU's energy counter and an AMD GPU's average power, by DRM card", async () => {
    const root = await mkdtemp(join(tmpdir(), "b9-hwmon-"));
    const dev = await mkdtemp(join(tmpdir(), "b9-dev-"));
    await mkdir(join(dev, "drm", "card1"), { recursive: true });
    for (const [name, driver, file, value] of [
      ["hwmon0", "coretemp", "temp1_input", "40000"],
      ["hwmon1", "i915", "energy1_input", "123000000"],
      ["hwmon2", "amdgpu", "power1_average", "35000000"],
    ] as const) {
      await mkdir(join(root, name));
      await writeFile(join(root, name, "name"), `${driver}\n`);
      await writeFile(join(root, name, file), `${value}\n`);
    }
    const { symlink } = await import("node:fs/promises");
    await symlink(dev, join(root, "hwmon2", "device"));
    const gpus = await findHwmonGpus(root);
    expect(
      gpus.map((g) => [g.driver, g.index, g.energyFile !== undefined, g.powerFile !== undefined]),
    ).toEqual([
      ["i915", 0, true, false],
      ["amdgpu", 1, false, true],
    ]);
    expect(await readHwmonMicro(gpus[0]!.energyFile!)).toBe(123);
    expect(await readHwmonMicro(gpus[1]!.powerFile!)).toBe(35);
  });

  it("reads CPU time from this process's real /proc stat, and a cgroup's cpu.stat", async () => {
    const { readFileSync } = await import("node:fs");
    const stat = parseProcStat(readFileSync("/proc/self/stat", "utf8"));
    expect(stat?.pid).toBe(process.pid);
    expect(stat!.ownSeconds).toBeGreaterThan(0);
    // A command name with spaces and parentheses does not shift the fields.
    expect(parseProcStat("42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 150 50 7 3 20 0 1 0")).toEqual({
      pid: 42,
      ppid: 1,
      ownSeconds: 2,
      childrenSeconds: 0.1,
    });
    expect(parseProcStat("not a stat line")).toBeUndefined();
    expect(parseCgroupCpuStat("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")).toBe(2.5);
    expect(parseCgroupCpuStat("nr_periods 0\n")).toBeUndefined();
    const tree = new ProcessTreeCpu(process.pid);
    const first = await tree.read();
    let x = 0;
    for (let i = 0; i < 3e7; i++) x += i;
    expect(x).toBeGreaterThan(0);
    const second = await tree.read();
    expect(second!).toBeGreaterThan(first!);
    expect(await new ProcessTreeCpu(2 ** 22 + 7).read()).toBeUndefined();
  });

  it("keeps its members' stat files open between readings when asked, reads the same, and closes them", async () => {
    const child = spawn("/bin/sh", ["-c", `"${process.execPath}" -e "for (;;) {}" & wait`], {
      stdio: "ignore",
      detached: true,
    });
    // This process's descriptors open on a /proc stat file (others come and go with the test runner).
    const statFiles = () =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return /^\/proc\/\d+\/stat$/.test(readlinkSync(`/proc/self/fd/${fd}`));
        } catch {
          return false;
        }
      }).length;
    const before = statFiles();
    const open = new ProcessTreeCpu(child.pid!, { keepOpen: true });
    const byPath = new ProcessTreeCpu(child.pid!);
    try {
      await waitFor(async () => ((await open.read()) ?? 0) > 0.2, {
        what: "the busy grandchild's CPU time",
        timeoutMs: 60_000,
      });
      // Between full scans (once a second) the known members' files are read through open descriptors.
      const kept = await open.read();
      const read = await byPath.read();
      expect(Math.abs(kept! - read!)).toBeLessThan(0.5);
      // Within a second of the one before (so not a full scan, whatever that one was).
      const later = await open.read();
      expect(later!).toBeGreaterThanOrEqual(kept!);
      expect(statFiles()).toBeGreaterThan(before);
    } finally {
      process.kill(-child.pid!, "SIGKILL");
    }
    await new Promise((resolve) => child.once("exit", resolve));
    // Gone: the last reading stands (it only grows), and close() gives the descriptors back.
    expect((await open.read())!).toBeGreaterThan(0.2);
    open.close();
    expect(statFiles()).toBe(before);
  });

  it("counts a child that ended and was reaped before its CPU time was ever read (a short job on a busy machine)", async () => {
    const child = spawn(process.execPath, ["-e", "let x = 0; for (let i = 0; i < 2e8; i++) x += i;"], {
      stdio: "ignore",
    });
    const tree = new ProcessTreeCpu(child.pid!, { ownChild: true });
    await new Promise((resolve) => child.once("exit", resolve));
    // Node has reaped it: its time is in this process's children's time, and only there.
    const seconds = await tree.read();
    expect(seconds).toBeGreaterThan(0.05);
  });

  it("counts a grandchild's CPU time while it runs (found through the kernel's children lists)", async () => {
    // The shell stays the grandchild's parent (it waits), as an engine's launcher would.
    const child = spawn("/bin/sh", ["-c", `"${process.execPath}" -e "for (;;) {}" & wait`], {
      stdio: "ignore",
      detached: true,
    });
    try {
      const tree = new ProcessTreeCpu(child.pid!);
      await waitFor(async () => ((await tree.read()) ?? 0) > 0.2, {
        what: "the grandchild's CPU time in the tree's",
        timeoutMs: 60_000,
      });
    } finally {
      process.kill(-child.pid!, "SIGKILL");
    }
  });

  it("without the kernel's children lists, finds the tree from every process's parent link", async () => {
    const proc = await mkdtemp(join(tmpdir(), "b9-proc-"));
    // pid ppid utime (ticks): 100 the engine, 101 its child, 102 a grandchild, 103 someone else's.
    for (const [pid, ppid, ticks] of [
      [100, 1, 100],
      [101, 100, 50],
      [102, 101, 25],
      [103, 1, 1000],
    ]) {
      await mkdir(join(proc, String(pid)));
      await writeFile(
        join(proc, String(pid), "stat"),
        `${pid} (x) S ${ppid} ${pid} ${pid} 0 -1 0 0 0 0 0 ${ticks} 0 0 0 20 0 1 0\n`,
      );
    }
    expect(await new ProcessTreeCpu(100, { procRoot: proc }).read()).toBeCloseTo(1.75, 9);
  });

  it("rates a CPU from the shipped table by its /proc/cpuinfo name, else CodeCarbon's default per thread", () => {
    expect(normalizeCpuModel("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")).toBe("Intel Xeon Gold 6248");
    expect(cpuRating("AMD EPYC 9654 96-Core Processor", 192)).toEqual({
      wattsPerCore: 360 / 192,
      source: "tdp-table:AMD EPYC 9654 (360 W / 192 cores)",
    });
    // The longest name wins: 9654P is its own part.
    expect(cpuRating("AMD EPYC 9654P 96-Core Processor", 96).source).toContain("AMD EPYC 9654P");
    const unknown = cpuRating("AMD EPYC", 2);
    expect(unknown.wattsPerCore).toBe(DEFAULT_WATTS_PER_THREAD);
    expect(unknown.source).toMatch(/^tdp-default:4 W per thread/);
  });
});
