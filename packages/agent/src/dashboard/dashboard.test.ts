import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { createLogger } from "@beta9/http";
import type { Hardware } from "@beta9/protocol";
import { testModelPath, waitFor } from "@beta9/test-utils";
import { render } from "ink-testing-library";
import React from "react";
import { afterEach, describe, expect, it } from "vitest";
import { UsageSampler } from "../hardware/usage-sampler.ts";
import { InferenceManager } from "../inference/manager.ts";
import { StoreCatalog } from "../inference/model-catalog.ts";
import { RequestActivity } from "../inference/request-activity.ts";
import { PullTracker } from "../models/pull-tracker.ts";
import { ModelStore } from "../models/store.ts";
import { AgentState } from "../state.ts";
import { Dashboard } from "./dashboard.ts";
import { LogFeed } from "./log-feed.ts";
import { DashboardStore } from "./store.ts";

/*
 * The live dashboard on the agent's own in-process state: the real AgentState, logger, pull
 * tracker and inference manager (with no engines), drawn by Ink into a virtual terminal.
 */

const hardware: Hardware = {
  os: "linux",
  arch: "x64",
  cpu_model: "test cpu",
  cpu_cores: 2,
  memory_total_bytes: 16 * 2 ** 30,
  gpus: [
    {
      index: 0,
      vendor: "nvidia",
      name: "NVIDIA L4",
      memory_total_bytes: 24 * 2 ** 30,
      unified_memory: false,
    },
  ],
};

const stops: (() => void)[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

function agentParts() {
  const state = new AgentState({
    machineId: "ab12cd34",
    pool: "external",
    gateway: "http://127.0.0.1:1994",
    hardware,
  });
  const logs = new LogFeed();
  const log = createLogger({ name: "b9agent", destination: logs });
  const inference = new InferenceManager({
    engines: new Map(),
    catalog: {
      resolve: async (name) => {
        throw new Error(`${name} is not in this test's store`);
      },
    },
    choose: () => "builtin",
    hardware,
    usage: () => state.usage,
    log,
  });
  return {
    state,
    log,
    sources: {
      state,
      inference,
      activity: new RequestActivity(),
      pulls: new PullTracker(),
      logs,
      endpoint: () => "http://127.0.0.1:9999/v1",
      machineName: "box",
    },
  };
}

function show(store: DashboardStore, onQuit = () => {}) {
  store.start();
  const r = render(React.createElement(Dashboard, { store, onQuit }));
  stops.push(() => {
    r.unmount();
    store.stop();
  });
  // ink-testing-library's terminal has no height; give it one as a real terminal would.
  resize(r.stdout, 100, 30);
  const screen = () => stripVTControlCharacters(r.lastFrame() ?? "");
  const shows = (text: string | RegExp) =>
    waitFor(() => (typeof text === "string" ? screen().includes(text) : text.test(screen())), {
      what: `${text} on screen`,
      timeoutMs: 5_000,
      intervalMs: 20,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n--- screen ---\n${screen()}`);
    });
  return { ...r, screen, shows };
}

function resize(stdout: NodeJS.EventEmitter, columns: number, rows: number) {
  Object.defineProperty(stdout, "columns", { value: columns, configurable: true });
  Object.defineProperty(stdout, "rows", { value: rows, configurable: true });
  stdout.emit("resize");
}

describe("live dashboard", () => {
  it("follows the agent as it connects, heartbeats, logs and loses its gateway", async () => {
    const { state, log, sources } = agentParts();
    const d = show(new DashboardStore(sources));
    await d.shows("Beta9 Agent: ab12cd34 (box)");
    expect(d.screen()).toContain("Status: CONNECTING │ Gateway: http://127.0.0.1:1994 connecting…");
    expect(d.screen()).toContain("GPUs: 1");
    expect(d.screen()).toContain("GPU: NVIDIA L4 · 24.0 GiB VRAM");
    expect(d.screen()).toContain("Last Heartbeat: never");

    state.gatewayConnected = true;
    log.info("connected to gateway");
    state.lastHeartbeatAt = Date.now();
    state.status = "READY";
    await d.shows("Status: READY │ Gateway: http://127.0.0.1:1994 connected");
    await d.shows(/Last Heartbeat: [01]s ago/);
    await d.shows(/\d\d:\d\d:\d\d connected to gateway/);

    state.gatewayConnected = false;
    state.status = "DISCONNECTED";
    state.reconnects++;
    log.warn(
      { err: "ECONNREFUSED connect ECONNREFUSED 127.0.0.1:1994" },
      "cannot reach the gateway; will retry",
    );
    await d.shows(
      "Status: DISCONNECTED │ Gateway: http://127.0.0.1:1994 unreachable (1 try) │ Pool: external",
    );
    await d.shows("cannot reach the gateway; will retry: ECONNREFUSED connect ECONNREFUSED 127.0.0.1:1994");
  });

  it("shows an engine's own JSON log lines as their message, and never a secret", async () => {
    const { log, sources } = agentParts();
    const d = show(new DashboardStore(sources));
    log.info(
      { engine: "builtin", model: "smol" },
      JSON.stringify({
        level: 30,
        time: 1,
        name: "b9-builtin",
        msg: "Server listening at http://127.0.0.1:4242",
      }),
    );
    log.info({ token: "b9m_secret-credential" }, "joined the gateway");
    await d.shows(/\d\d:\d\d:\d\d Server listening at http:\/\/127\.0\.0\.1:4242/);
    await d.shows("joined the gateway");
    expect(d.screen()).not.toContain('"level"');
    expect(d.screen()).not.toContain("b9m_secret-credential");
  });

  it("shows an engine's JSON line with no message as a sentence, not as JSON", async () => {
    const { log, sources } = agentParts();
    const d = show(new DashboardStore(sources));
    log.info({ engine: "builtin" }, JSON.stringify({ event: "listening", port: 4242 }));
    await d.shows(/\d\d:\d\d:\d\d listening \(port 4242\)/);
    expect(d.screen()).not.toContain("{");
  });

  it("logs one line when a pull ends, with the model's size", async () => {
    const { sources } = agentParts();
    const dir = await mkdtemp(join(tmpdir(), "b9-dashboard-pull-"));
    stops.push(() => void rm(dir, { recursive: true, force: true }));
    const puller = sources.pulls.track(
      new StoreCatalog(new ModelStore({ dir, allowedDirs: [dirname(testModelPath())] })),
    );
    const d = show(new DashboardStore(sources));
    await puller.pull("smol", testModelPath(), { onProgress: () => {}, signal: AbortSignal.timeout(60_000) });
    await d.shows(/\d\d:\d\d:\d\d pulled smol \(94 MiB\)/);
    expect(d.screen().match(/pulled smol/g)).toHaveLength(1);
    expect(d.screen()).not.toContain("↓ pull smol");
  });

  it("shows a conversion's progress in tensors, and logs what the pulled model was converted from", async () => {
    const { sources } = agentParts();
    const dir = await mkdtemp(join(tmpdir(), "b9-dashboard-quantize-"));
    stops.push(() => void rm(dir, { recursive: true, force: true }));
    const puller = sources.pulls.track(
      new StoreCatalog(new ModelStore({ dir, allowedDirs: [dirname(testModelPath())] })),
    );
    const d = show(new DashboardStore(sources));
    const pulled = puller.pull("smol-q8", testModelPath(), {
      quantize: "Q8_0",
      onProgress: () => {},
      signal: AbortSignal.timeout(180_000),
    });
    // After the source is copied and llama-quantize built: seconds, more on a loaded machine.
    await waitFor(() => /↓ pull smol-q8 .* \d+% \d+ tensors of \d+ tensors/.test(d.screen()), {
      what: "the conversion's bar in tensors",
      timeoutMs: 120_000,
      intervalMs: 20,
    });
    await pulled;
    await d.shows(/\d\d:\d\d:\d\d pulled smol-q8 \(1\d\d MiB\), quantized from Q4_1 to Q8_0/);
  }, 240_000);

  it("redraws for the terminal's new size and says when it is too small", async () => {
    const { sources } = agentParts();
    const d = show(new DashboardStore(sources));
    await d.shows("╔══ Beta9 Agent");
    resize(d.stdout, 40, 10);
    await d.shows("Terminal too small (40×10)");
    expect(d.screen()).not.toContain("╔");
    resize(d.stdout, 70, 22);
    await d.shows("╔══ Beta9 Agent");
    const rows = d.screen().split("\n");
    expect(rows).toHaveLength(22);
    expect([...(rows[0] ?? "")].length).toBe(70);
  });

  it("quits on q and on Ctrl+C", async () => {
    const { sources } = agentParts();
    const quits: string[] = [];
    const d = show(new DashboardStore(sources), () => quits.push("quit"));
    await d.shows("Press q or Ctrl+C to quit");
    d.stdin.write("x");
    d.stdin.write("q");
    await waitFor(() => quits.length === 1, { what: "q to quit" });
    d.stdin.write("\u0003");
    await waitFor(() => quits.length === 2, { what: "Ctrl+C to quit" });
  });

  it("measures CPU and memory itself while no heartbeat brings them (the gateway is away)", async () => {
    const { sources } = agentParts();
    const sampler = new UsageSampler({ ...hardware, gpus: [] });
    const d = show(new DashboardStore(sources, { sampleUsage: () => sampler.sample() }));
    await d.shows(/CPU: \d+\.\d% │ Memory: \d+\.\d% of \d+\.\d GiB/);
  });

  it("shows the agent stopping", async () => {
    const { sources } = agentParts();
    const store = new DashboardStore(sources);
    const d = show(store);
    await d.shows("Press q or Ctrl+C to quit");
    store.setStopping();
    await d.shows("Status: STOPPING");
    await d.shows("Stopping: engines are shutting down…");
  });
});
