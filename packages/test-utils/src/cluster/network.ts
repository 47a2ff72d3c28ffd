import { randomBytes } from "node:crypto";
import { ip } from "./ip.ts";

/** Every cluster's namespaces start with this, then the pid of the process that made them. */
export const NAMESPACE_PREFIX = "b9c-";

/** The hosts' subnet. Each cluster has its own switch and hosts, so clusters never see each other. */
const SUBNET = "10.77.0";
export const BRIDGE = "br0";

export interface HostNet {
  role: string;
  /** The host's network namespace. */
  ns: string;
  /** The host's address on the cluster's subnet (its interface is eth0). */
  address: string;
}

export interface Network {
  /** The namespace holding the bridge that joins the hosts: the cluster's switch. */
  switchNs: string;
  hosts: HostNet[];
}

/**
 * Build a switched network of hosts, each its own network namespace with loopback up and one veth
 * (eth0) whose other end is a port, named after the host's role, on a bridge in a namespace of its
 * own. Nothing is added to the namespace this process runs in. Namespace names carry this process's
 * pid (so a later run can tell stale ones) and a random part (so parallel test files never collide).
 */
export function createNetwork(roles: readonly string[]): Network {
  for (const role of roles) {
    // The switch port is named after the role: an interface name has at most 15 bytes.
    if (!/^[a-z][a-z0-9]{0,14}$/.test(role))
      throw new Error(`host role ${role} is not a short interface name`);
  }
  if (new Set(roles).size !== roles.length) throw new Error("host roles must be unique");
  if (roles.length > 200) throw new Error("a cluster has at most 200 hosts");
  const run = `${NAMESPACE_PREFIX}${process.pid}-${randomBytes(3).toString("hex")}`;
  const switchNs = `${run}-switch`;
  const made: string[] = [];
  const addNs = (ns: string) => {
    ip(["netns", "add", ns]);
    made.push(ns);
    ip(["-n", ns, "link", "set", "lo", "up"]);
  };
  try {
    addNs(switchNs);
    ip(["-n", switchNs, "link", "add", BRIDGE, "type", "bridge"]);
    ip(["-n", switchNs, "link", "set", BRIDGE, "up"]);
    const hosts = roles.map((role, i) => {
      const ns = `${run}-${role}`;
      addNs(ns);
      const address = `${SUBNET}.${10 + i}`;
      // Both ends are created where they live: the port in the switch, eth0 in the host.
      ip(["-n", switchNs, "link", "add", role, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      ip(["-n", switchNs, "link", "set", role, "master", BRIDGE, "up"]);
      ip(["-n", ns, "addr", "add", `${address}/24`, "dev", "eth0"]);
      ip(["-n", ns, "link", "set", "eth0", "up"]);
      return { role, ns, address };
    });
    return { switchNs, hosts };
  } catch (err) {
    for (const ns of made.reverse()) {
      try {
        ip(["netns", "del", ns]);
      } catch {}
    }
    throw err;
  }
}

/** Every namespace of a network, hosts first. */
export function namespaces(net: Network): string[] {
  return [...net.hosts.map((h) => h.ns), net.switchNs];
}
