import { describe, expect, it } from "vitest";
import { AllowList, isForbiddenAddress } from "./source-policy.ts";

/* Which addresses a workspace's source may reach: the address checks alone (the connections are tested on real agents). */

describe("addresses a workspace's source may not reach", () => {
  it("refuses loopback, private, link-local, CGNAT, unspecified, multicast and metadata addresses, IPv4-mapped too", () => {
    for (const a of [
      "127.0.0.1",
      "127.255.0.9",
      "10.1.2.3",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "100.127.255.254",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "fc00::1",
      "fd00:ec2::254",
      "fe80::1",
      "[::1]",
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
      "fe80::1%eth0",
      "not-an-address",
    ])
      expect(isForbiddenAddress(a), a).toBe(true);
  });

  it("lets public addresses through", () => {
    for (const a of ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
      expect(isForbiddenAddress(a), a).toBe(false);
  });

  it("lets through what the machine's owner allowed: CIDR blocks, single addresses and host names", () => {
    const allow = new AllowList(["10.0.0.0/8", "192.168.7.7", "fd12::/16", "Host.LAN"]);
    expect(allow.permits("models.internal", "10.9.8.7")).toBe(true);
    expect(allow.permits("x", "192.168.7.7")).toBe(true);
    expect(allow.permits("x", "192.168.7.8")).toBe(false);
    expect(allow.permits("x", "fd12::5")).toBe(true);
    expect(allow.permits("host.lan", "127.0.0.1")).toBe(true);
    expect(allow.permits("other.lan", "127.0.0.1")).toBe(false);
    expect(allow.permits("example.com", "93.184.216.34")).toBe(true);
  });

  it("refuses entries that are neither a block, an address nor a host name, saying which", () => {
    expect(() => new AllowList(["10.0.0.0/33"])).toThrow(/10\.0\.0\.0\/33/);
    expect(() => new AllowList(["http://x"])).toThrow(/neither a CIDR block/);
  });
});
