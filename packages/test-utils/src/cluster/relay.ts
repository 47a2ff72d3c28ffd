import net from "node:net";

/*
 * Run inside a host's namespace: `node relay.ts SOCKET_PATH TARGET_HOST TARGET_PORT`. Each connection
 * to the Unix socket (a file: it crosses namespaces) is joined to a TCP connection made from here to
 * the target, so a test process outside the cluster can talk as this host does.
 */
const [socketPath, host, port] = process.argv.slice(2);
if (!socketPath || !host || !port) {
  process.stderr.write("usage: relay.ts SOCKET_PATH TARGET_HOST TARGET_PORT\n");
  process.exit(2);
}

const server = net.createServer((inbound) => {
  const outbound = net.connect(Number(port), host);
  const close = () => {
    inbound.destroy();
    outbound.destroy();
  };
  inbound.on("error", close);
  outbound.on("error", close);
  inbound.pipe(outbound);
  outbound.pipe(inbound);
});
server.listen(socketPath, () => {
  process.stdout.write(`${JSON.stringify({ msg: "relay listening", socket: socketPath, host, port })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
