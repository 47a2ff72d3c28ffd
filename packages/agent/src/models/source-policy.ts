import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from "node:dns";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { LazyDispatcher } from "@beta9/http/undici-lazy";

/*
 * Where a model download may connect. A source a workspace gives (a deployment's) must not reach the
 * machine's own network: loopback, link-local, private and metadata addresses are refused unless the
 * machine's owner allow-listed them. The check runs on the address actually connected — after DNS,
 * on every connection a redirect opens — so a name that resolves (or rebinds) to a private address
 * is refused too.
 */

/** Addresses a workspace's source may not reach. */
const FORBIDDEN = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], // unspecified / "this network"
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // CGNAT (Tailscale among others)
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, 169.254.169.254 (cloud metadata) included
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["192.0.0.0", 24], // IETF protocol assignments
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast included
] as const)
  FORBIDDEN.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128],
  ["fc00::", 7], // ULA, fd00:ec2::254 (AWS metadata) included
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const)
  FORBIDDEN.addSubnet(net, prefix, "ipv6");

/** The IPv4 address inside an IPv4-mapped IPv6 one (::ffff:10.0.0.1), which connects to that IPv4 host. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function family(address: string): "ipv4" | "ipv6" {
  return isIP(address) === 6 ? "ipv6" : "ipv4";
}

export function isForbiddenAddress(address: string): boolean {
  const a = unmapped(address.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
  if (isIP(a) === 0) return true;
  return FORBIDDEN.check(a, family(a));
}

/**
 * What the machine's owner lets a workspace's source reach (models.allow_private_sources): CIDR
 * blocks ("10.0.0.0/8", "fd12::/16"), single addresses, or host names ("host.lan").
 */
export class AllowList {
  readonly #blocks = new BlockList();
  readonly #hosts = new Set<string>();

  /** Throws with the entry that is neither a CIDR block, an address nor a host name. */
  constructor(entries: readonly string[] = []) {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      const [net, bits, ...rest] = entry.split("/");
      const kind = isIP(net ?? "");
      if (kind !== 0 && rest.length === 0) {
        const max = kind === 4 ? 32 : 128;
        const prefix = bits === undefined ? max : Number(bits);
        if (!Number.isInteger(prefix) || prefix < 0 || prefix > max)
          throw new Error(`${JSON.stringify(raw)} has a prefix length that is not 0 to ${max}`);
        this.#blocks.addSubnet(net!, prefix, kind === 4 ? "ipv4" : "ipv6");
      } else if (
        /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(entry)
      ) {
        this.#hosts.add(entry);
      } else {
        throw new Error(
          `${JSON.stringify(raw)} is neither a CIDR block (10.0.0.0/8), an address nor a host name (host.lan)`,
        );
      }
    }
  }

  /** Whether a connection to `address`, for the URL host `host`, is allowed. */
  permits(host: string, address: string): boolean {
    if (
      this.#hosts.has(
        host
          .replace(/^\[|\]$/g, "")
          .replace(/\.$/, "")
          .toLowerCase(),
      )
    )
      return true;
    const a = unmapped(address.replace(/^\[|\]$/g, ""));
    if (isIP(a) !== 0 && this.#blocks.check(a, family(a))) return true;
    return !isForbiddenAddress(a);
  }
}

/** A connection the policy refused. Its message is for the machine's log, never for the tenant. */
export class SourceDeniedError extends Error {
  override name = "SourceDeniedError";
  readonly code = "ESOURCEDENIED";
}

export function isSourceDenied(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof SourceDeniedError) return true;
  return false;
}

/** dns.lookup that drops the addresses `allow` refuses for `hostname`, and fails when none is left. */
function checkedLookup(allow: AllowList): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...(options as LookupOptions), all: true }, (err, addresses) => {
      if (err) return callback(err, "", 0);
      const ok = (addresses as LookupAddress[]).filter((a) => allow.permits(hostname, a.address));
      if (ok.length === 0)
        return callback(new SourceDeniedError(`${hostname} resolves only to refused addresses`), "", 0);
      if ((options as LookupOptions).all) return (callback as unknown as AllAddresses)(null, ok);
      callback(null, ok[0]!.address, ok[0]!.family);
    });
  };
}
type AllAddresses = (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;

/**
 * An undici dispatcher whose every connection is checked against `allow`: IP literals before
 * connecting, names at DNS resolution, and the peer's address once connected (what was really reached).
 */
export function guardedDispatcher(allow: AllowList): LazyDispatcher {
  return new LazyDispatcher((undici) => {
    const base = undici.buildConnector({ lookup: checkedLookup(allow) });
    return new undici.Agent({
      connect: (opts, callback) => {
        const host = opts.hostname.replace(/^\[|\]$/g, "");
        if (isIP(host) !== 0 && !allow.permits(host, host))
          return callback(new SourceDeniedError(`${host} is a refused address`), null);
        base(opts, (err, socket) => {
          if (err) return callback(err, null);
          const peer = socket?.remoteAddress;
          if (!socket || !peer || !allow.permits(host, peer)) {
            socket?.destroy();
            return callback(new SourceDeniedError(`${host} connected to a refused address`), null);
          }
          callback(null, socket);
        });
      },
    });
  });
}
