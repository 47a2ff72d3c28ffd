import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hardware } from "@beta9/protocol";
import { waitFor } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { type CommandRunner, createExecFileRunner } from "../hardware/runner.ts";
import { ProcessTreeCpu } from "./cpu-time.ts";
import { openMachinePower } from "./machine-power.ts";
import { energyProbe } from "./probe.ts";

/*
 * Power sources found on a machine whose GPU tool misbehaves: a real nvidia-smi stand-in (a shell
 * script) that hangs, prints garbage, prints a recorded H100's output, or keeps an energy counter.
 */

const recording = new URL("../../testdata/hardware/nvidia-smi-h100-load.csv", import.meta.url).pathname;

const nvidiaBox: Hardware = {
  os: "linux",
  arch: "x64",
  cpu_model: "AMD EPYC 9654 96-Core Processor",
  cpu_cores: 192,
  memory_total_bytes: 1,
  gpus: [
    {
      index: 0,
      vendor: "nvidia",
      name: "NVIDIA H100 80GB HBM3",
      memory_total_bytes: 1,
      unified_memory: false,
      backend: "cuda",
    },
  ],
};

/** A runner whose tools are the scripts in a fresh folder; any other tool is missing. */
async function tools(scripts: Record<string, string>): Promise<CommandRunner> {
  const dir = await mkdtemp(join(tmpdir(), "b9-tools-"));
  for (const [name, body] of Object.entries(scripts)) {
    await writeFile(join(dir, name), `#!/bin/sh\n${body}\n`);
    await chmod(join(dir, name), 0o755);
  }
  const run = createExecFileRunner({ timeoutMs: 1_000 });
  return (cmd, args) => run(join(dir, cmd), args);
}

const noRapl = () => mkdtemp(join(tmpdir(), "b9-no-rapl-"));

describe("a machine's power sources", () => {
  it("a GPU tool that hangs is given up on, said so, and CPU time still gives a util_tdp figure", async () => {
    const problems: string[] = [];
    const started = Date.now();
    const power = await openMachinePower({
      hardware: nvidiaBox,
      run: await tools({ "nvidia-smi": "sleep 30" }),
      raplRoot: await noRapl(),
      onProblem: (_, message) => problems.push(message),
    });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(power.gpus).toEqual([]);
    expect(problems.join("\n")).toMatch(/NVIDIA GPUs get no energy figure/);
    const tree = new ProcessTreeCpu(process.pid);
    const probe = energyProbe(power, { cpuSeconds: () => tree.read(), gpus: "all" });
    await probe();
    let x = 0;
    for (let i = 0; i < 3e7; i++) x += i;
    expect(x).toBeGreaterThan(0);
    const [cpu] = await probe();
    expect(cpu).toMatchObject({
      method: "util_tdp",
      confidence: "low",
      source: "tdp-table:AMD EPYC 9654 (360 W / 192 cores)",
    });
    expect(cpu!.joules).toBeGreaterThan(0);
    power.close();
  });

  it("garbage from the tool is no source either, never a zero reading", async () => {
    const power = await openMachinePower({
      hardware: nvidiaBox,
      run: await tools({
        "nvidia-smi": "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'",
      }),
      raplRoot: await noRapl(),
    });
    expect(power.gpus).toEqual([]);
    power.close();
  });

  it("where the counter field is refused, power.draw (the recorded H100 under load) is sampled and integrated", async () => {
    const power = await openMachinePower({
      hardware: nvidiaBox,
      run: await tools({
        "nvidia-smi": `case "$1" in *total_energy_consumption*) echo 'Field "total_energy_consumption" is not a valid field to query.'; exit 2;; esac\ncat '${recording}'`,
      }),
      raplRoot: await noRapl(),
      intervalMs: 100,
    });
    expect(power.gpus.map((g) => [g.source, g.method, g.confidence])).toEqual([
      ["nvidia-smi:power.draw", "power_sampled", "medium"],
    ]);
    let joules = 0;
    await waitFor(
      async () => {
        joules = (await power.gpus[0]!.read()).get(0) ?? 0;
        return joules > 631.95 * 0.2;
      },
      { what: "sampled joules", timeoutMs: 20_000 },
    );
    power.close();
  });

  it("an NVML counter printed by nvidia-smi is preferred, as a counter (high)", async () => {
    const power = await openMachinePower({
      hardware: nvidiaBox,
      // mJ growing with the clock: 1 W.
      run: await tools({ "nvidia-smi": `echo "0, $(( $(date +%s%N) / 1000000 ))"` }),
      raplRoot: await noRapl(),
    });
    expect(power.gpus.map((g) => [g.source, g.method, g.confidence])).toEqual([
      ["nvidia-smi:total_energy_consumption", "counter", "high"],
    ]);
    await waitFor(async () => ((await power.gpus[0]!.read()).get(0) ?? 0) > 0.1, {
      what: "counted joules",
      timeoutMs: 20_000,
    });
    power.close();
  });

  it("no power source at all and no readable CPU time: a static figure, labelled static", async () => {
    const power = await openMachinePower({
      hardware: { ...nvidiaBox, gpus: [] },
      run: await tools({}),
      raplRoot: await noRapl(),
    });
    const probe = energyProbe(power, { cpuSeconds: async () => undefined, gpus: "all" });
    const [part] = await probe();
    expect(part).toMatchObject({ method: "static", confidence: "low" });
    expect(part!.source).toMatch(/^static:1 busy core/);
    power.close();
  });
});
