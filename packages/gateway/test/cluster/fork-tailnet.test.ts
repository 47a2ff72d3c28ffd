import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { Cluster, type ClusterGateway, GATEWAY_ARGS, testPython } from "@beta9/test-utils";
import OpenAI from "openai";
import { expect, it } from "vitest";
import { FORK_MODEL, KEEPALIVE_RUNNING, REGISTER, replay, startOllamaStandIn } from "../fork-replay.ts";
import { clusterSkipReason, useCluster } from "./fixture.ts";

/*
 * A fork agent's machine on its own host, whose Ollama is reached over a tailnet address: the
 * gateway's host routes 100.100.74.117 to it (as tailscaled would), the machine's keepalives (the Go
 * agent's recorded ones) come from another host and report that address, and the operator's answers
 * come from the Ollama there (llama.cpp's server standing in for it, see fork-replay.ts).
 */
const unsupported = clusterSkipReason();
const TAILNET_IP = "100.100.74.117";
const OLLAMA_PORT = 11434;

let cluster: Cluster;
let gw: ClusterGateway;
let ollama: ChildProcess;

const ip = (args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"] });

useCluster(
  () => cluster,
  async () => {
    cluster = Cluster.create({ workers: 1 });
    const fork = cluster.workerHosts[0]!;
    ip(["-n", fork.ns, "addr", "add", `${TAILNET_IP}/32`, "dev", "eth0"]);
    ip(["-n", cluster.gatewayHosts[0]!.ns, "route", "add", `${TAILNET_IP}/32`, "via", fork.address]);
    const prefix = ["ip", "netns", "exec", fork.ns];
    [gw, ollama] = await Promise.all([
      cluster.startGateway({ args: GATEWAY_ARGS }),
      // On every address of its host, so the gateway could reach it on the LAN address too.
      startOllamaStandIn({
        host: "0.0.0.0",
        port: OLLAMA_PORT,
        prefix,
        reach: async (path) => {
          try {
            execFileSync(
              "ip",
              [
                ...prefix.slice(1),
                testPython(),
                "-c",
                `import urllib.request as u; u.urlopen("http://${TAILNET_IP}:${OLLAMA_PORT}${path}")`,
              ],
              { stdio: "ignore" },
            );
            return true;
          } catch {
            return false;
          }
        },
      }),
    ]);
  },
  async () => ollama?.kill("SIGTERM"),
);

it.skipIf(unsupported)(
  "the operator's chat reaches the fork machine's Ollama at its tailnet address, never at another host's",
  async () => {
    const token = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { uses: 2 })).body.token;
    const fork = cluster.workerHosts[0]!;
    const opts = { token, machineId: "f0a0c0aa", ip: TAILNET_IP, port: OLLAMA_PORT };
    expect((await replay(gw.url, REGISTER, opts)).status).toBe(200);
    expect((await replay(gw.url, KEEPALIVE_RUNNING, opts)).status).toBe(200);
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: gw.adminKey, maxRetries: 0 });
    const chat = await openai.chat.completions.create({
      model: FORK_MODEL,
      messages: [{ role: "user", content: "Say hello." }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(chat.choices).toHaveLength(1);
    expect(chat.usage?.completion_tokens).toBeGreaterThan(0);

    // A machine that reports a LAN host's address (reachable from the gateway, but neither its own
    // nor on the tailnet) is not routed to.
    const aimed = { token, machineId: "f0a0c0ab", ip: fork.address, port: OLLAMA_PORT, models: ["aimed:1b"] };
    expect((await replay(gw.url, REGISTER, aimed)).status).toBe(200);
    expect((await replay(gw.url, KEEPALIVE_RUNNING, aimed)).status).toBe(200);
    const m = (
      await gw.api<{ inference: { models: { name: string; state: string }[] } }>(
        "GET",
        "/api/v1/machines/f0a0c0ab",
      )
    ).body;
    expect(m.inference.models).toEqual([expect.objectContaining({ name: "aimed:1b", state: "unreachable" })]);
    await expect(
      openai.chat.completions.create({ model: "aimed:1b", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({ status: 404 });
  },
  60_000,
);
