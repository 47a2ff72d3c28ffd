import { type Launch, Proc } from "../processes.ts";
import type { HostNet } from "./network.ts";

/** One machine of the cluster: a network namespace with its own address; processes run inside it. */
export class Host implements HostNet {
  readonly role: string;
  readonly ns: string;
  readonly address: string;

  constructor(net: HostNet) {
    this.role = net.role;
    this.ns = net.ns;
    this.address = net.address;
  }

  /** Launches node on this host: `ip netns exec` execs it, so the process keeps its pid. */
  get launch(): Required<Launch> {
    return { prefix: ["ip", "netns", "exec", this.ns] };
  }

  /** Run `node ARGS…` on this host. */
  run(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    return new Proc(args, env, this.launch);
  }
}
