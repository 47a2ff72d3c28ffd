/**
 * The floor of Beta9's request path on Node, for bench/gateway/run.ts: two bare Node processes wired
 * as Beta9's two hops are, doing nothing else. `front` takes HTTP/1.1 from the clients (node:http) and
 * forwards each request on one HTTP/2 session to `back`, which takes the streams as they come
 * (http2's stream API, as the agent does) and forwards them over keep-alive HTTP/1.1 to the upstream
 * with undici's Pool (the agent's client for its engine). Bodies are piped, never parsed: no auth, routing, metering, logging or usage. What Beta9
 * costs above this is what its own work costs; what this costs is Node's share, which no change to
 * Beta9 removes. The hops, one process each, are in node-floor-hops.ts.
 */
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { freePort, HOST, spawnChild, stopChild, untilAnswering } from "./common.ts";

/** Both hops started, in front of the upstream on `upstreamPort`; the port clients call, or why not. */
export async function startNodeFloor(
  upstreamPort: number,
): Promise<{ procs: ChildProcess[]; port: number } | string> {
  const hops = fileURLToPath(new URL("./node-floor-hops.ts", import.meta.url));
  const [port, backPort] = [await freePort(), await freePort()];
  const backProc = spawnChild(process.execPath, [hops, "back", String(backPort), String(upstreamPort)]);
  const frontProc = spawnChild(process.execPath, [hops, "front", String(port), String(backPort)]);
  const procs = [frontProc, backProc];
  try {
    await untilAnswering(`http://${HOST}:${port}/health`, {
      procs,
      name: "a bare Node hop",
      timeoutMs: 10_000,
      intervalMs: 200,
    });
  } catch (e) {
    for (const p of procs) await stopChild(p);
    return `the bare Node hops did not start: ${(e as Error).message}`;
  }
  return { procs, port };
}
