import net from "node:net";
import { join } from "node:path";
import { Proc, tempDir } from "../processes.ts";

export interface Tunnel {
  /** http://127.0.0.1:PORT on this test process's side. */
  url: string;
  close(): Promise<void>;
}

const RELAY = join(import.meta.dirname, "relay.ts");

/**
 * A way in for this test process: connections to a loopback port here come out of a relay running in
 * the host's namespace (`prefix` launches it there) as TCP connections to `target`. Traffic from here
 * to the cluster therefore leaves from that host, over its veth, like the host's own.
 */
export async function openTunnel(prefix: string[], target: { host: string; port: number }): Promise<Tunnel> {
  const socketPath = join(tempDir("b9-tun-"), "relay.sock");
  const relay = new Proc([RELAY, socketPath, target.host, String(target.port)], {}, { prefix });
  await relay.waitForLog((e) => e.msg === "relay listening", 10_000);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((local) => {
    const remote = net.connect(socketPath);
    sockets.add(local);
    local.on("close", () => sockets.delete(local));
    const close = () => {
      local.destroy();
      remote.destroy();
    };
    local.on("error", close);
    remote.on("error", close);
    local.pipe(remote);
    remote.pipe(local);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await relay.stop("SIGKILL");
    },
  };
}
