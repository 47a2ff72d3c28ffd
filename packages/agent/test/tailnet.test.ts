import { execFileSync } from "node:child_process";
import { createServer } from "node:net";
import { type GatewayProc, type ModelAgent, startGateway, startModelAgent, waitFor } from "@beta9/test-utils";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

/*
 * The fork's users call a worker's models at its Tailscale address. No tailnet here: an interface
 * named like Tailscale's (tailscale*, a veth: this kernel has no dummy links) with a 100.64.0.0/10
 * address stands in for it, the way the cluster tests make hosts; that needs root.
 */

const skip = process.getuid?.() !== 0 ? "test interfaces need root (ip link add); run as root" : undefined;

const made: string[] = [];
function addInterface(name: string, address: string): void {
  execFileSync("ip", ["link", "add", name, "type", "veth", "peer", "name", `${name}p`]);
  made.push(name);
  execFileSync("ip", ["addr", "add", `${address}/32`, "dev", name]);
  // Both ends up: Node lists only interfaces that are up and running (have a carrier).
  for (const end of [name, `${name}p`]) execFileSync("ip", ["link", "set", end, "up"]);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let gw: GatewayProc;
const workers: ModelAgent[] = [];

/** A real agent with no --listen (so it picks its addresses itself) on a fixed free control port. */
async function startOnOwnAddresses(env: NodeJS.ProcessEnv): Promise<{ worker: ModelAgent; port: number }> {
  const port = await freePort();
  const worker = await startModelAgent(gw, {
    name: "tailnet-box",
    initArgs: ["--control-port", String(port)],
    listen: null,
    env,
  });
  workers.push(worker);
  return { worker, port };
}

async function get(url: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  if (!skip) gw = await startGateway();
}, 60_000);

afterEach(async () => {
  for (const w of workers.splice(0)) await w.agent.proc.stop();
  for (const name of made.splice(0)) execFileSync("ip", ["link", "del", name]);
});

afterAll(async () => {
  await gw?.proc.stop();
});

describe.skipIf(skip)("direct use over Tailscale", () => {
  it("a tailnet address that appears after the agent started is listened on and reported as the /v1 endpoint", async () => {
    const { worker, port } = await startOnOwnAddresses({ B9AGENT_TAILNET_RECHECK_MS: "300" });
    const local = `http://127.0.0.1:${port}`;
    await worker.serve("smollm2");
    expect((await get(`${local}/inference/status`, worker.token)).body.endpoint).toBe(`${local}/v1`);

    addInterface("tailscaleb9t", "100.100.1.1");
    const tailnet = `http://100.100.1.1:${port}`;
    // Within a few re-detection intervals, users reach the authenticated /v1 at the tailnet address.
    let models: Awaited<ReturnType<typeof get>> | undefined;
    await waitFor(
      async () => {
        models = await get(`${tailnet}/v1/models`, worker.token).catch(() => undefined);
        return models?.status === 200;
      },
      {
        timeoutMs: 10_000,
        what: "the agent's /v1/models on its new tailnet address",
        proc: worker.agent.proc,
      },
    );
    expect((models?.body.data as { id: string }[]).map((m) => m.id)).toContain("smollm2");
    expect((await get(`${tailnet}/v1/models`)).status).toBe(401);
    expect((await get(`${local}/inference/status`, worker.token)).body.endpoint).toBe(`${tailnet}/v1`);
    const status = await get(`${tailnet}/status`, worker.token);
    expect(status.body.inference_endpoint).toBe(`${tailnet}/v1`);
    expect(status.body.inference_port).toBe(port);
  }, 120_000);

  it("TAILSCALE_IP names the tailnet address, as in the fork, even on an interface not named tailscale", async () => {
    addInterface("b9tsip0", "100.100.2.2");
    const { worker, port } = await startOnOwnAddresses({ TAILSCALE_IP: "100.100.2.2" });
    const tailnet = `http://100.100.2.2:${port}`;
    expect((await get(`${tailnet}/v1/models`, worker.token)).status).toBe(200);
    expect((await get(`${tailnet}/status`, worker.token)).body.inference_endpoint).toBe(`${tailnet}/v1`);
    // Loopback still answers too.
    expect((await get(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  }, 120_000);
});
