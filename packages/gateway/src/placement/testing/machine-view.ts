import type { Gpu, GpuVendor, MachineView } from "@beta9/protocol";

const GB = 1e9;

/** A READY machine in pool "external" with 8 cores, 64 GB and no GPU, as the registry shows it; `over` changes any of it. */
export function machineView(over: Partial<MachineView> & { id: string }): MachineView {
  return {
    name: over.id,
    pool: "external",
    status: "READY",
    hostname: over.id,
    agent_version: "0.1.0",
    connection: "channel",
    hardware: {
      os: "linux",
      arch: "x64",
      cpu_model: "x",
      cpu_cores: 8,
      memory_total_bytes: 64 * GB,
      gpus: [],
    },
    usage: null,
    inference: { engines: [], models: [], memory_free_bytes: 32 * GB, vram_free_bytes: null },
    cordoned: false,
    draining: false,
    running_jobs: 0,
    joined_at: "2026-11-27T00:00:00.000Z",
    last_heartbeat_at: "2026-11-27T00:00:00.000Z",
    country: null,
    ...over,
  };
}

/** One GPU of the vendor, with this much memory. */
export function gpu(vendor: GpuVendor, memoryBytes: number, unified = false): Gpu {
  return {
    index: 0,
    vendor,
    name: `${vendor} GPU`,
    memory_total_bytes: memoryBytes,
    unified_memory: unified,
  };
}
