import type { Proc } from "../processes.ts";
import { ip } from "./ip.ts";
import { BRIDGE, type HostNet, type Network } from "./network.ts";

/*
 * Faults a cluster can suffer. A cut link is the host's switch port taken off the bridge: the host's
 * own interface stays up with its carrier, and every frame either way is dropped without a word, as
 * when a cable or switch fails further along. Nothing on the host learns of it but silence, so TCP
 * waits and retransmits: the gateway and the agent must notice by themselves (heartbeats). Taking
 * eth0 down instead would tell the host's kernel at once, which a real partition does not (and netem
 * or iptables are not there on every machine).
 */

/** Cut a host off the network: it keeps running and keeps its address, but nothing gets through. */
export function cutLink(net: Network, host: HostNet): void {
  ip(["-n", net.switchNs, "link", "set", host.role, "nomaster"]);
}

/** Put the host back on the switch; connections that survived the silence carry on. */
export function healLink(net: Network, host: HostNet): void {
  ip(["-n", net.switchNs, "link", "set", host.role, "master", BRIDGE]);
}

/** Send a signal to one process (SIGKILL: it dies without a word; SIGSTOP: it hangs until SIGCONT). */
export function signal(proc: Proc, sig: NodeJS.Signals): void {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
    throw new Error(`cannot send ${sig}: the process already exited`);
  }
  proc.child.kill(sig);
}
