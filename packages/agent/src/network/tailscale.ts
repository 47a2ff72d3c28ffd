import os from "node:os";

type Interfaces = ReturnType<typeof os.networkInterfaces>;

/** Tailscale hands out addresses from the CGNAT range 100.64.0.0/10. */
export function isTailscaleIPv4(address: string): boolean {
  const octets = address.split(".");
  if (octets.length !== 4 || !octets.every((octet) => /^\d{1,3}$/.test(octet) && Number(octet) <= 255)) {
    return false;
  }
  const [first, second] = octets.map(Number) as [number, number];
  return first === 100 && second >= 64 && second <= 127;
}

/**
 * The tailnet addresses the control API should listen on: TAILSCALE_IP when set (the fork's agent
 * took it as given, e.g. for a Tailscale whose interface has another name), else those found.
 */
export function tailnetAddresses(
  env: NodeJS.ProcessEnv = process.env,
  interfaces: Interfaces = os.networkInterfaces(),
): string[] {
  const given = env.TAILSCALE_IP?.trim();
  if (given) return [given];
  return findTailscaleAddresses(interfaces);
}

/**
 * The machine's Tailscale IPv4 addresses: on Linux the interface is "tailscale0"; on macOS it is
 * one of the "utunN" tunnels, which other VPNs also use, so there the address range decides.
 */
export function findTailscaleAddresses(interfaces: Interfaces = os.networkInterfaces()): string[] {
  const found: string[] = [];
  for (const [name, addresses] of Object.entries(interfaces)) {
    if (!name.startsWith("tailscale") && !name.startsWith("utun")) continue;
    for (const entry of addresses ?? []) {
      // Node before 18.4 reported family as the number 4.
      const ipv4 = entry.family === "IPv4" || (entry.family as unknown) === 4;
      if (ipv4 && !entry.internal && isTailscaleIPv4(entry.address) && !found.includes(entry.address)) {
        found.push(entry.address);
      }
    }
  }
  return found;
}
