import { BlockList, isIP } from "node:net";

/**
 * The reverse proxies the operator listed (`--trusted-proxy`). Only they may say who the client is
 * (X-Forwarded-For); anyone else could put any address there, so theirs is ignored.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;

  /** `entries`: addresses ("10.0.0.7") or CIDRs ("10.0.0.0/8", "fd00::/8"); throws on anything else. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [address = "", prefix] = entry.trim().split("/");
      const family = isIP(address);
      const bits = prefix === undefined ? (family === 6 ? 128 : 32) : Number(prefix);
      if (family === 0 || !Number.isInteger(bits) || bits < 0 || bits > (family === 6 ? 128 : 32)) {
        throw new Error(
          `--trusted-proxy takes an address or CIDR such as 10.0.0.7 or 10.0.0.0/8, not ${JSON.stringify(entry)}`,
        );
      }
      this.#list.addSubnet(address, bits, family === 6 ? "ipv6" : "ipv4");
    }
    this.#empty = entries.length === 0;
  }

  /** For fastify's `trustProxy`: whether the hop at `address` is a listed proxy. */
  trusts = (address: string | undefined): boolean => {
    if (this.#empty || !address) return false;
    const a = plain(address);
    const family = isIP(a);
    return family !== 0 && this.#list.check(a, family === 6 ? "ipv6" : "ipv4");
  };

  /**
   * The client's address: the socket's peer, unless that is a listed proxy; then, walking
   * X-Forwarded-For from the right, the first address no listed proxy holds (as fastify's req.ip).
   */
  clientAddress(remote: string | undefined, forwardedFor: string | string[] | undefined): string | undefined {
    if (!this.trusts(remote)) return remote && plain(remote);
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : (forwardedFor ?? ""))
      .split(",")
      .map((h) => h.trim())
      .filter(Boolean);
    let client = remote && plain(remote);
    for (let i = hops.length - 1; i >= 0; i--) {
      client = plain(hops[i]!);
      if (!this.trusts(client)) break;
    }
    return client;
  }
}

/** "::ffff:10.0.0.7" (an IPv4 peer on a dual-stack socket) → "10.0.0.7". */
function plain(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
