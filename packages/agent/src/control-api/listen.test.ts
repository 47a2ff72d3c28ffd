import { describe, expect, it } from "vitest";
import { listenAddresses, parseListen } from "./listen.ts";

describe("control API addresses", () => {
  it("listens on loopback by default, never on every interface", () => {
    const addrs = listenAddresses(9999);
    expect(addrs[0]).toEqual({ host: "127.0.0.1", port: 9999 });
    expect(addrs.map((a) => a.host)).not.toContain("0.0.0.0");
    for (const a of addrs.slice(1)) expect(a.host).toMatch(/^100\./); // only a Tailscale address besides
  });

  it("takes --listen as HOST, HOST:PORT or [v6]:PORT", () => {
    expect(listenAddresses(9999, ["127.0.0.1:0", "100.100.74.117"])).toEqual([
      { host: "127.0.0.1", port: 0 },
      { host: "100.100.74.117", port: 9999 },
    ]);
    expect(parseListen("[::1]:8080", 9999)).toEqual({ host: "::1", port: 8080 });
    expect(() => parseListen("host:99999", 9999)).toThrow(/port/);
    expect(() => parseListen("", 9999)).toThrow(/--listen/);
  });
});
