import type { NetworkInterfaceInfo } from "node:os";
import { describe, expect, it } from "vitest";
import { findTailscaleAddresses, isTailscaleIPv4, tailnetAddresses } from "./tailscale.ts";

const v4 = (address: string, internal = false): NetworkInterfaceInfo => ({
  address,
  netmask: "255.255.255.255",
  family: "IPv4",
  mac: "00:00:00:00:00:00",
  internal,
  cidr: `${address}/32`,
});
const v6 = (address: string): NetworkInterfaceInfo => ({
  address,
  netmask: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
  family: "IPv6",
  mac: "00:00:00:00:00:00",
  internal: false,
  cidr: `${address}/128`,
  scopeid: 0,
});

describe("Tailscale addresses", () => {
  it("knows the 100.64.0.0/10 range", () => {
    expect(["100.64.0.0", "100.101.102.103", "100.127.255.255"].every(isTailscaleIPv4)).toBe(true);
    expect(
      ["100.63.255.255", "100.128.0.0", "10.0.0.1", "100.64.0", "100.64.0.256", "fd7a::1"].some(
        isTailscaleIPv4,
      ),
    ).toBe(false);
  });

  it("finds the address of tailscale0 on Linux", () => {
    const interfaces = {
      lo: [v4("127.0.0.1", true)],
      eth0: [v4("192.168.1.20")],
      tailscale0: [v4("100.101.102.103"), v6("fd7a:115c:a1e0::1")],
    };
    expect(findTailscaleAddresses(interfaces)).toEqual(["100.101.102.103"]);
  });

  it("finds the Tailscale utun on macOS and ignores other VPN tunnels", () => {
    const interfaces = {
      en0: [v4("192.168.1.21")],
      utun3: [v4("10.8.0.2")],
      utun4: [v4("100.90.1.2"), v6("fd7a:115c:a1e0::2")],
    };
    expect(findTailscaleAddresses(interfaces)).toEqual(["100.90.1.2"]);
  });

  it("ignores the CGNAT range on other interfaces (a carrier's address on eth0 is not Tailscale)", () => {
    expect(findTailscaleAddresses({ eth0: [v4("100.72.0.5")], wlan0: [v4("100.65.3.3")] })).toEqual([]);
  });

  it("returns nothing when there is no Tailscale, and reads this machine without throwing", () => {
    expect(findTailscaleAddresses({})).toEqual([]);
    expect(Array.isArray(findTailscaleAddresses())).toBe(true);
  });

  it("takes TAILSCALE_IP as the tailnet address when set, as the fork's agent did", () => {
    const interfaces = { tailscale0: [v4("100.101.102.103")] };
    expect(tailnetAddresses({ TAILSCALE_IP: " 100.90.9.9 " }, interfaces)).toEqual(["100.90.9.9"]);
    expect(tailnetAddresses({ TAILSCALE_IP: "" }, interfaces)).toEqual(["100.101.102.103"]);
    expect(tailnetAddresses({}, {})).toEqual([]);
  });
});
