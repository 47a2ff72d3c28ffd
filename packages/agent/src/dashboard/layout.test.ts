import { stripVTControlCharacters } from "node:util";
import { render } from "ink-testing-library";
import React from "react";
import { afterEach, describe, expect, it } from "vitest";
import { columnsOf } from "./format.ts";
import { Layout } from "./layout.ts";
import type { LogLine } from "./log-feed.ts";
import type { DashboardModel } from "./model.ts";

/*
 * Frames of the dashboard as a person sees them, drawn by Ink into a virtual terminal from a
 * snapshot of an agent.
 */

const GiB = 2 ** 30;
const NOW = new Date(2026, 0, 15, 10, 15, 30).getTime();

function model(over: Partial<DashboardModel> = {}): DashboardModel {
  return {
    now: NOW,
    machine: { id: "1c1b50c8", name: "mac-studio-1" },
    status: "READY",
    stopping: false,
    gateway: { url: "http://100.72.101.23:1994", connected: true, reconnects: 0 },
    pool: "external",
    usage: { cpuPercent: 28.1, memoryUsedBytes: 8 * GiB, memoryTotalBytes: 16 * GiB },
    gpus: [],
    lastHeartbeatAt: NOW - 25_000,
    jobs: [],
    runs: [],
    inference: {
      status: "stopped",
      endpoint: "http://100.100.74.117:9999/v1",
      engines: ["builtin"],
      models: [],
    },
    pulls: [],
    logs: [
      { time: NOW - 7000, level: "info", text: "control API listening on 127.0.0.1:9999" },
      { time: NOW - 6000, level: "info", text: "connected to gateway" },
    ],
    ...over,
  };
}

let unmount: (() => void) | undefined;
afterEach(() => unmount?.());

function frame(m: DashboardModel, columns = 100, rows = 30): string {
  const r = render(React.createElement(Layout, { model: m, columns, rows }));
  unmount = r.unmount;
  return stripVTControlCharacters(r.lastFrame() ?? "");
}

describe("dashboard layout", () => {
  it("shows the machine, its status, gateway and pool, CPU, memory, GPUs with their VRAM, and the last heartbeat", () => {
    const f = frame(
      model({
        gpus: [
          { name: "NVIDIA H100 80GB HBM3", vramBytes: 80 * GiB, usedBytes: 2 * GiB },
          { name: "NVIDIA H100 80GB HBM3", vramBytes: 80 * GiB, usedBytes: 1 * GiB },
          { name: "NVIDIA GeForce RTX 4090", vramBytes: 24 * GiB },
        ],
      }),
    );
    expect(f).toMatch(/^╔══ Beta9 Agent: 1c1b50c8 \(mac-studio-1\) ═+╗$/m);
    expect(f).toContain("║ Status: READY │ Gateway: http://100.72.101.23:1994 connected │ Pool: external");
    expect(f).toContain("║ CPU: 28.1% │ Memory: 50.0% of 16.0 GiB │ GPUs: 3 │ Last Heartbeat: 25s ago");
    expect(f).toContain("GPU: NVIDIA H100 80GB HBM3 ×2 · 80.0 GiB VRAM each · 3.0 GiB in use");
    expect(f).toContain("GPU: NVIDIA GeForce RTX 4090 · 24.0 GiB VRAM");
    expect(f).toMatch(/║ SERVED MODELS +║/);
    expect(f).toContain("No models served yet");
    expect(f).toMatch(/║ INFERENCE +║/);
    expect(f).toContain("Status: stopped │ Endpoint: http://100.100.74.117:9999/v1 │ Engines: builtin");
    expect(f).toContain("Models: none");
    expect(f).toMatch(/║ LOGS +║/);
    expect(f).toContain("Press q or Ctrl+C to quit");
  });

  it("says when nothing is known yet: no heartbeat, no usage sample, still connecting", () => {
    const f = frame(
      model({
        status: "CONNECTING",
        gateway: { url: "http://gw:1994", connected: false, reconnects: 0 },
        usage: null,
        lastHeartbeatAt: null,
      }),
    );
    expect(f).toContain("Status: CONNECTING │ Gateway: http://gw:1994 connecting…");
    expect(f).toContain("CPU: – │ Memory: – │ GPUs: 0 │ Last Heartbeat: never");
  });

  it("shows a gateway that went away as unreachable, with the tries so far", () => {
    const f = frame(
      model({ status: "DISCONNECTED", gateway: { url: "http://gw:1994", connected: false, reconnects: 3 } }),
    );
    expect(f).toContain(
      "Status: DISCONNECTED │ Gateway: http://gw:1994 unreachable (3 tries) │ Pool: external",
    );
    unmount?.();
    expect(
      frame(
        model({
          status: "DISCONNECTED",
          gateway: { url: "http://gw:1994", connected: false, reconnects: 3 },
        }),
        120,
        30,
      ),
    ).toContain(
      "Status: DISCONNECTED │ Gateway: http://gw:1994 unreachable, reconnecting (3 tries) │ Pool: external",
    );
    unmount?.();
    // At 80 columns the pool still shows: the gateway's words give way (DISCONNECTED says it), never the pool.
    const narrow = frame(
      model({
        status: "DISCONNECTED",
        gateway: { url: "http://127.0.0.1:40037", connected: false, reconnects: 3 },
      }),
      80,
      24,
    );
    expect(narrow).toMatch(
      /║ Status: DISCONNECTED │ Gateway: http:\/\/127\.0\.0\.1:40037 │ Pool: external +║/,
    );
  });

  it("lists the models with state, engine, memory and context, and the replicas with their requests", () => {
    const f = frame(
      model({
        inference: {
          status: "running",
          endpoint: "http://127.0.0.1:9999/v1",
          engines: ["builtin", "llamacpp"],
          models: [
            {
              name: "llama3.2:1b",
              state: "ready",
              engine: "builtin",
              memoryBytes: 1.5 * GiB,
              contextSize: 4096,
            },
            {
              name: "qwen2.5:7b",
              state: "starting",
              engine: "llamacpp",
              memoryBytes: null,
              contextSize: null,
            },
            {
              name: "broken",
              state: "error",
              engine: "vllm",
              memoryBytes: null,
              contextSize: null,
              error:
                "vllm exited with code 1 while starting\n--- last lines from vllm ---\nCUDA out of memory",
            },
          ],
        },
        jobs: [
          {
            model: "llama3.2:1b",
            origin: "gateway",
            state: "ready",
            running: 2,
            served: 14,
            lastRequestAt: NOW - 3000,
          },
          {
            model: "qwen2.5:7b",
            origin: "local",
            state: "starting",
            running: 0,
            served: 0,
            lastRequestAt: null,
          },
        ],
      }),
      100,
      36,
    );
    expect(f).toMatch(/MODEL +ROLE +STATE +REQUESTS/);
    expect(f).toMatch(/llama3\.2:1b +replica +ready +2 running · 14 done · 3s ago/);
    expect(f).toMatch(/qwen2\.5:7b +local +starting +idle/);
    // A table: each column starts where its heading does.
    const rows = f.split("\n");
    const at = (text: string) => rows.find((r) => r.includes(text))?.indexOf(text);
    expect(at("replica")).toBe(at("ROLE"));
    expect(at("local")).toBe(at("ROLE"));
    expect(at("2 running")).toBe(at("REQUESTS"));
    expect(f).toContain("Status: running │ Endpoint: http://127.0.0.1:9999/v1 │ Engines: builtin, llamacpp");
    expect(f).toMatch(/llama3\.2:1b +ready +builtin · 1\.5 GiB · ctx 4096/);
    expect(f).toMatch(/qwen2\.5:7b +starting +llamacpp/);
    expect(f).toMatch(/broken +error +vllm exited with code 1 while starting/);
    expect(f).not.toContain("CUDA out of memory");
  });

  it("lists the jobs newest first with their state, runtime, GPUs and last log line, in columns", () => {
    const f = frame(
      model({
        runs: [
          {
            id: "job_01HZX4",
            state: "RUNNING",
            startedAt: NOW - 754_000,
            endedAt: null,
            gpus: [0, 1],
            lastLine: `epoch 3/10 loss=0.412 ${"x".repeat(200)}`,
          },
          {
            id: "job_01HZX3",
            state: "FAILED",
            startedAt: NOW - 90_000,
            endedAt: NOW - 60_000,
            gpus: [],
            lastLine: "Traceback",
          },
          { id: "job_01HZX2", state: "PREPARING", startedAt: null, endedAt: null, gpus: [], lastLine: null },
        ],
      }),
      100,
      30,
    );
    expect(f).toMatch(/║ JOBS │ 2 running +║/);
    const rows = f.split("\n");
    const at = (text: string) => rows.find((r) => r.includes(text))?.indexOf(text);
    const row = (id: string) => rows.find((r) => r.includes(id)) ?? "";
    expect(row("job_01HZX4")).toMatch(/job_01HZX4 +RUNNING +12m 34s +0,1 +epoch 3\/10 loss=0\.412 x+…? *║$/);
    expect(row("job_01HZX3")).toMatch(/job_01HZX3 +FAILED +30s +cpu +Traceback +║$/);
    expect(row("job_01HZX2")).toMatch(/job_01HZX2 +PREPARING +– +cpu +║$/);
    expect(at("RUNNING")).toBe(at("STATE"));
    expect(at("12m 34s")).toBe(at("RUNTIME"));
    expect(at("epoch")).toBe(at("LAST LINE"));
    for (const r of rows.slice(0, -1)) expect(columnsOf(r)).toBe(100);
    unmount?.();
    expect(frame(model(), 100, 30)).toContain("No jobs yet");
  });

  it("shows the newest log lines with their time, and a bar for each pull under way", () => {
    const logs: LogLine[] = Array.from({ length: 100 }, (_, i) => ({
      time: NOW - (100 - i) * 1000,
      level: "info",
      text: `line ${i}`,
    }));
    logs.push({ time: NOW, level: "warn", text: "cannot reach the gateway; will retry: ECONNREFUSED" });
    const f = frame(
      model({
        logs,
        pulls: [{ model: "qwen2.5:7b", status: "downloading", completed: 2.25 * GiB, total: 5 * GiB }],
      }),
    );
    expect(f).toContain("10:15:30 cannot reach the gateway; will retry: ECONNREFUSED");
    expect(f).toContain("line 99");
    expect(f).not.toMatch(/line 0\s/);
    expect(f).toMatch(/↓ pull qwen2\.5:7b █{9}░{11} 45% 2\.3 GiB of 5\.0 GiB/);
    const rows = f.split("\n");
    // Newest at the bottom: the pull bar, then the frame's last line and the footer.
    expect(rows.at(-3)).toContain("↓ pull qwen2.5:7b");
    expect(rows.at(-4)).toContain("cannot reach the gateway");
  });

  it("fills exactly the terminal's size, whatever it is, with no line wider than the terminal", () => {
    const long = model({
      gateway: {
        url: `http://${"very-long-host-name.".repeat(8)}example:1994`,
        connected: true,
        reconnects: 0,
      },
      logs: [{ time: NOW, level: "info", text: "x".repeat(400) }],
    });
    for (const [columns, rows] of [
      [60, 22],
      [80, 24],
      [120, 40],
      [200, 60],
    ] as const) {
      const lines = frame(long, columns, rows).split("\n");
      expect(lines).toHaveLength(rows);
      for (const line of lines) expect([...line].length).toBeLessThanOrEqual(columns);
      expect(lines[0]).toMatch(/^╔.*╗$/);
      expect([...(lines[0] ?? "")].length).toBe(columns);
      expect(lines.at(-2)).toMatch(/^╚═+╝$/);
      unmount?.();
    }
  });

  it("at 80×24 draws a whole frame: every line 80 columns, borders in line, nothing cut that fits", () => {
    const f = frame(
      model({
        gpus: [{ name: "NVIDIA GeForce RTX 4090", vramBytes: 24 * GiB, usedBytes: 2 * GiB }],
        jobs: [
          {
            model: "smollm2:135m",
            origin: "gateway",
            state: "ready",
            running: 1,
            served: 14,
            lastRequestAt: NOW - 3000,
          },
        ],
        inference: {
          status: "running",
          endpoint: "http://100.100.74.117:9999/v1",
          engines: ["builtin", "llamacpp"],
          models: [
            { name: "smollm2:135m", state: "ready", engine: "builtin", memoryBytes: GiB, contextSize: 4096 },
          ],
        },
      }),
      80,
      24,
    );
    const lines = f.split("\n");
    expect(lines).toHaveLength(24);
    const box = lines.slice(0, -1);
    // Columns as the terminal counts them (box characters are one column each, one code point each).
    for (const line of box) expect(columnsOf(line)).toBe(80);
    for (const line of box) expect(line).toMatch(/^[╔║╠╟╚].*[╗║╣╢╝]$/);
    expect(lines[0]).toMatch(/^╔══ Beta9 Agent: 1c1b50c8 \(mac-studio-1\) ═+╗$/);
    expect(lines[1]).toMatch(
      /^║ Status: READY │ Gateway: http:\/\/100\.72\.101\.23:1994 │ Pool: external +║$/,
    );
    expect(lines[2]).toMatch(
      /^║ CPU: 28\.1% │ Memory: 50\.0% of 16\.0 GiB │ GPUs: 1 │ Last Heartbeat: 25s ago +║$/,
    );
    expect(f).not.toContain("…");
    expect(f).toMatch(/║ INFERENCE │ Engines: builtin, llamacpp +║/);
    expect(f).toMatch(/║ Status: running │ Endpoint: http:\/\/100\.100\.74\.117:9999\/v1 +║/);
    // The served models' table keeps its columns under their headings.
    const at = (text: string) => box.find((r) => r.includes(text))?.indexOf(text);
    expect(at("replica")).toBe(at("ROLE"));
    expect(at("ready")).toBe(at("STATE"));
    expect(at("1 running · 14 done · 3s ago")).toBe(at("REQUESTS"));
  });

  it("at the smallest size still shows every panel whole: models named on the status line, jobs and served models summed up", () => {
    const busy = model({
      machine: { id: "1c1b50c8", name: "a-machine-name-far-too-long-for-a-sixty-column-terminal" },
      runs: [
        { id: "job-b", state: "RUNNING", startedAt: NOW - 5000, endedAt: null, gpus: [], lastLine: "step 1" },
        {
          id: "job-a",
          state: "SUCCEEDED",
          startedAt: NOW - 9000,
          endedAt: NOW - 8000,
          gpus: [0],
          lastLine: null,
        },
      ],
      inference: {
        status: "running",
        endpoint: "http://127.0.0.1:9999/v1",
        engines: ["builtin"],
        models: [
          { name: "smol", state: "ready", engine: "builtin", memoryBytes: null, contextSize: null },
          { name: "qwen", state: "starting", engine: "builtin", memoryBytes: null, contextSize: null },
        ],
      },
      jobs: [
        { model: "smol", origin: "gateway", state: "ready", running: 1, served: 4, lastRequestAt: NOW },
        { model: "qwen", origin: "local", state: "starting", running: 0, served: 0, lastRequestAt: null },
      ],
    });
    const lines = frame(busy, 60, 22).split("\n");
    expect(lines).toHaveLength(22);
    expect(lines).toContainEqual(expect.stringMatching(/^║ 1 running · 2 kept · newest job-b +║$/));
    expect(lines[0]).toMatch(/^╔══ Beta9 Agent: 1c1b50c8 \(a-machine-name.*… ═+╗$/);
    expect(lines).toContainEqual(expect.stringMatching(/^║ 2 served: smol, qwen · 1 running · 4 done +║$/));
    expect(lines).toContainEqual(
      expect.stringMatching(/^║ Status: running │ Endpoint: http:\/\/127\.0\.0\.1:9999\/v1 │ … ║$/),
    );
    unmount?.();
    const wider = frame(busy, 160, 22);
    expect(wider).toContain("Engines: builtin │ Models: smol (ready), qwen (starting)");
  });

  it("says the terminal is too small instead of drawing a broken frame", () => {
    const f = frame(model(), 50, 12);
    expect(f).toContain("Terminal too small (50×12)");
    expect(f.replace(/\s+/g, " ")).toContain("enlarge the window, or run b9agent --no-tui for plain logs");
    expect(f).not.toContain("╔");
    unmount?.();
    expect(frame(model(), 100, 21)).toContain("Terminal too small (100×21)");
  });

  it("shows that the agent is stopping its engines after q or Ctrl+C", () => {
    const f = frame(model({ stopping: true }));
    expect(f).toContain("Status: STOPPING");
    expect(f).toContain("Stopping: engines are shutting down…");
    expect(f).not.toContain("Press q");
  });
});
