import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Hardware } from "@beta9/protocol";
import { tempDir } from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import { parseNvidiaSmiGpus, parseRocmSmiGpus } from "../src/hardware/index.ts";
import { gpuDeviceGlobs, gpuEnvironment } from "../src/jobs/gpu-env.ts";
import { bwrapArgs, gpuDeviceNodes } from "../src/jobs/sandbox.ts";

/*
 * What a job sees of the GPUs, built against the recorded layouts of real machines (an H100 from
 * nvidia-smi, a Radeon RX 7900 XT from rocm-smi): only the devices it was given, by the variable
 * its vendor's runtime reads; a CPU job none. The GPU device nodes are bound into the sandbox for
 * GPU jobs only.
 */

const recorded = (name: string) =>
  readFileSync(new URL(`../testdata/hardware/${name}`, import.meta.url), "utf8");

function machine(gpus: Hardware["gpus"]): Hardware {
  return {
    os: "linux",
    arch: "x64",
    cpu_model: "test",
    cpu_cores: 8,
    memory_total_bytes: 64 * 2 ** 30,
    gpus,
  };
}

const h100 = parseNvidiaSmiGpus(recorded("nvidia-smi-h100-idle.csv"));
const rx7900 = parseRocmSmiGpus(recorded("rocm-smi-rx7900xt.json"));

describe("GPU pinning from the recorded layouts", () => {
  it("an H100 job sees its GPU by UUID, in nvidia-smi's order, and no AMD device", () => {
    expect(gpuEnvironment(machine(h100), [0])).toEqual({
      CUDA_VISIBLE_DEVICES: "GPU-00000000-0000-0000-0000-000000000000",
      CUDA_DEVICE_ORDER: "PCI_BUS_ID",
      HIP_VISIBLE_DEVICES: "",
      ROCR_VISIBLE_DEVICES: "",
    });
  });

  it("a Radeon job sees its card through HIP and ROCr, and no CUDA device", () => {
    expect(gpuEnvironment(machine(rx7900), [0])).toEqual({
      CUDA_VISIBLE_DEVICES: "",
      HIP_VISIBLE_DEVICES: "0",
      ROCR_VISIBLE_DEVICES: "0",
    });
  });

  it("a CPU job on a GPU machine sees no GPU at all", () => {
    expect(gpuEnvironment(machine(h100), [])).toEqual({
      CUDA_VISIBLE_DEVICES: "",
      HIP_VISIBLE_DEVICES: "",
      ROCR_VISIBLE_DEVICES: "",
    });
  });

  it("two of four H100s without UUIDs: their nvidia-smi indexes, in PCI bus order", () => {
    const four = [0, 1, 2, 3].map((index) => ({ ...h100[0]!, index, uuid: undefined }));
    expect(gpuEnvironment(machine(four), [1, 3]).CUDA_VISIBLE_DEVICES).toBe("1,3");
  });

  it("a GPU the machine does not have is refused", () => {
    expect(() => gpuEnvironment(machine(rx7900), [1])).toThrow("this machine has no GPU 1");
  });
});

describe("GPU device nodes in the sandbox", () => {
  const dev = tempDir("b9-dev-");
  for (const name of ["nvidia0", "nvidiactl", "nvidia-uvm", "kfd", "null", "sda"])
    writeFileSync(join(dev, name), "");
  mkdirSync(join(dev, "dri"));
  const sandbox = (devices: string[]) =>
    bwrapArgs(
      { jobDir: "/data/jobs/j/work", readOnly: [], devices, command: ["nvidia-smi"], root: null },
      () => true,
    );
  const bound = (args: string[]) => args.flatMap((a, i) => (a === "--dev-bind" ? [args[i + 1]] : []));

  it("an NVIDIA job gets /dev/nvidia* and nothing else", async () => {
    const nodes = await gpuDeviceNodes(gpuDeviceGlobs(machine(h100), [0]), dev);
    expect(bound(sandbox(nodes)).sort()).toEqual(
      ["nvidia-uvm", "nvidia0", "nvidiactl"].map((n) => join(dev, n)),
    );
  });

  it("an AMD job gets /dev/kfd and /dev/dri", async () => {
    const nodes = await gpuDeviceNodes(gpuDeviceGlobs(machine(rx7900), [0]), dev);
    expect(bound(sandbox(nodes)).sort()).toEqual([join(dev, "dri"), join(dev, "kfd")]);
  });

  it("a CPU job gets no device node", async () => {
    const nodes = await gpuDeviceNodes(gpuDeviceGlobs(machine(h100), []), dev);
    expect(bound(sandbox(nodes))).toEqual([]);
    expect(sandbox(nodes)).toContain("--unshare-net");
  });
});
