import type { Machine } from "@beta9/store";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIVENESS, machineStatus } from "../../machines/liveness.ts";
import { forkServerOrigin } from "./fork-compat.ts";

describe("where the gateway may call a fork machine's Ollama", () => {
  it("takes a Tailscale address (IPv4 or IPv6) from wherever the keepalive came", () => {
    expect(forkServerOrigin("100.100.74.117", 11434, "203.0.113.9")).toEqual({
      origin: "http://100.100.74.117:11434",
    });
    expect(forkServerOrigin("fd7a:115c:a1e0::1", 11434, "203.0.113.9")).toEqual({
      origin: "http://[fd7a:115c:a1e0::1]:11434",
    });
  });

  it("takes the keepalive's own address (IPv4-mapped or not), and localhost from loopback", () => {
    expect(forkServerOrigin("192.168.1.20", 11434, "::ffff:192.168.1.20")).toEqual({
      origin: "http://192.168.1.20:11434",
    });
    expect(forkServerOrigin("localhost", 11434, "127.0.0.1")).toEqual({ origin: "http://127.0.0.1:11434" });
  });

  it("refuses anything else: another host, the gateway's own loopback, a name, no port", () => {
    for (const [ip, port, from] of [
      ["169.254.169.254", 80, "203.0.113.9"],
      ["127.0.0.1", 5432, "203.0.113.9"],
      ["10.0.0.5", 11434, "10.0.0.6"],
      ["100.128.0.1", 11434, "203.0.113.9"], // just past the tailnet's range
      ["gpu-box.local", 11434, "203.0.113.9"],
      ["100.100.74.117", undefined, "203.0.113.9"],
    ] as const) {
      expect(forkServerOrigin(ip, port, from)).toHaveProperty("refused");
    }
  });
});

describe("a fork machine's liveness with the gateway's defaults", () => {
  const row = (protocol: "channel" | "keepalive") =>
    ({ protocol, draining_at: null, cordoned_at: null }) as unknown as Machine;
  const live = (secondsAgo: number) => ({
    connected: false,
    lastHeartbeatAt: 1_000_000 - secondsAgo * 1000,
    usage: null,
    inference: null,
    runningJobs: 0,
  });

  it("stays READY between its 60 s keepalives, where a channel agent that silent is long OFFLINE", () => {
    expect(machineStatus(row("keepalive"), live(70), 1_000_000, DEFAULT_LIVENESS)).toBe("READY");
    expect(machineStatus(row("channel"), live(70), 1_000_000, DEFAULT_LIVENESS)).toBe("OFFLINE");
  });

  it("is UNHEALTHY after 150 s without one and OFFLINE after the fork's 300 s", () => {
    expect(machineStatus(row("keepalive"), live(151), 1_000_000, DEFAULT_LIVENESS)).toBe("UNHEALTHY");
    expect(machineStatus(row("keepalive"), live(301), 1_000_000, DEFAULT_LIVENESS)).toBe("OFFLINE");
  });
});
