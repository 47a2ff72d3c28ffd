import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Gpu, MachineView } from "@beta9/sdk";
import type { CliIO } from "../src/io.ts";
import { run } from "../src/program.ts";

/** The clock every test pins, so "3s ago" is exact. */
export const NOW = Date.parse("2026-03-01T12:00:00.000Z");
export const GiB = 2 ** 30;

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** An IO that collects what the CLI prints, with only the environment given (never the real one). */
export function captureIO(env: Record<string, string | undefined>): CliIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, env, now: () => NOW, stdout: (s) => void out.push(s), stderr: (s) => void err.push(s) };
}

/** Runs `b9 ...args` in-process. */
export async function b9(env: Record<string, string | undefined>, ...args: string[]): Promise<Result> {
  const io = captureIO(env);
  const code = await run(args, io);
  return { code, stdout: io.out.join(""), stderr: io.err.join("") };
}

/** A fresh directory for a config file; HOME points here too so the real one is never touched. */
export function tempHome(): string {
  return mkdtempSync(join(tmpdir(), "b9-cli-test-"));
}

const h100 = (index: number): Gpu => ({
  index,
  vendor: "nvidia",
  name: "NVIDIA H100 80GB",
  memory_total_bytes: 80 * GiB,
  unified_memory: false,
  backend: "cuda",
  driver_version: "550.54",
});

export function machines(): MachineView[] {
  const base = {
    hostname: "host.lan",
    agent_version: "0.1.0",
    country: null,
    connection: "channel" as const,
    usage: null,
    inference: null,
    cordoned: false,
    draining: false,
    running_jobs: 0,
    joined_at: new Date(NOW - 2 * 86_400_000).toISOString(),
  };
  return [
    {
      ...base,
      id: "a1b2c3d4",
      name: "gpu-box-1",
      pool: "gpu",
      country: "DE",
      status: "READY",
      hostname: "gpu-box-1.lan",
      hardware: {
        os: "linux",
        arch: "x64",
        cpu_model: "AMD EPYC 9454",
        cpu_cores: 32,
        memory_total_bytes: 128 * GiB,
        gpus: [h100(0), h100(1)],
      },
      usage: {
        cpu_percent: 12.4,
        memory_used_bytes: 40 * GiB,
        memory_total_bytes: 128 * GiB,
        gpus: [{ index: 0, memory_used_bytes: 20 * GiB, utilization_percent: 55 }],
      },
      running_jobs: 3,
      last_heartbeat_at: new Date(NOW - 3_000).toISOString(),
    },
    {
      ...base,
      id: "e5f6a7b8",
      name: "mac-studio",
      pool: "gpu",
      status: "BUSY",
      hardware: {
        os: "darwin",
        arch: "arm64",
        cpu_model: "Apple M2 Ultra",
        cpu_cores: 24,
        memory_total_bytes: 192 * GiB,
        gpus: [
          {
            index: 0,
            vendor: "apple",
            name: "Apple M2 Ultra",
            memory_total_bytes: 144 * GiB,
            unified_memory: true,
            backend: "metal",
          },
        ],
      },
      last_heartbeat_at: new Date(NOW - 125_000).toISOString(),
    },
    {
      ...base,
      id: "c0ffee00",
      name: "cpu-only",
      pool: "external",
      status: "OFFLINE",
      connection: "none",
      hardware: {
        os: "linux",
        arch: "x64",
        cpu_model: "Intel Xeon",
        cpu_cores: 4,
        memory_total_bytes: 15.5 * GiB,
        gpus: [],
      },
      last_heartbeat_at: null,
    },
  ];
}
