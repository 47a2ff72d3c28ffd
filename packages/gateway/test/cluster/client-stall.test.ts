import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { GATEWAY_PORT } from "@beta9/protocol";
import { Cluster, type ClusterGateway, testPython, waitFor } from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, describe, expect, it } from "vitest";
import {
  ask,
  clusterSkipReason,
  deployTestModel,
  GATEWAY_ARGS,
  startServing,
  useCluster,
} from "./fixture.ts";

/*
 * Clients that ask for streams and stop reading them (security review, issue 10, finding 10), on a
 * cluster: the gateway's host has small TCP send buffers (its own network namespace's tcp_wmem), so a
 * client that stops reading backs the gateway's writes up within seconds rather than megabytes.
 */
const unsupported = clusterSkipReason();

const STALL_S = 2;
const KEY_CONCURRENCY = 4;
// biome-ignore lint/suspicious/noExplicitAny: the usage answer's shape is checked by each assertion.
type Json = any;

describe.skipIf(unsupported)("clients that stop reading their streams", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  let readers: ChildProcess | undefined;

  useCluster(
    () => cluster,
    async () => {
      cluster = Cluster.create({ workers: 1 });
      const gwNs = cluster.gatewayHosts[0]!.ns;
      // Small send buffers on the gateway's host only: a stalled client is seen after a few KiB.
      const sysctl = spawn("ip", [
        "netns",
        "exec",
        gwNs,
        "sysctl",
        "-qw",
        "net.ipv4.tcp_wmem=4096 16384 65536",
      ]);
      expect(await new Promise((r) => sysctl.on("exit", r))).toBe(0);
      let client: OpenAI;
      ({ gw, client } = await startServing(cluster, {
        gateway: {
          args: [
            ...GATEWAY_ARGS,
            "--client-stall-timeout",
            `${STALL_S}s`,
            "--key-concurrency",
            String(KEY_CONCURRENCY),
          ],
        },
      }));
      await deployTestModel(gw, "chat", { min_replicas: 1 });
      expect(await ask(client, "chat")).toMatch(/Paris/);
    },
  );
  afterAll(() => {
    readers?.stdin?.end();
    readers?.kill();
  });

  const key = async (name: string) =>
    (await gw.api<{ id: string; key: string }>("POST", "/api/v1/keys", { name, scopes: ["inference"] })).body;
  const usageOf = async (id: string): Promise<Json> =>
    (await gw.api<Json>("GET", "/api/v1/usage?group_by=key")).body.groups.find((g: Json) => g.group === id);

  it("stops their generations after the stall timeout, bounds a key's requests at once, and serves another key meanwhile", async () => {
    const hog = await key("hog");
    const body = JSON.stringify({
      model: "chat",
      messages: [{ role: "user", content: "Count from 1 to 1000, one number per line." }],
      max_tokens: 900,
      temperature: 0,
      stream: true,
    });
    // Four clients on the client host, each taking every slot the engine has (4), reading nothing.
    readers = spawn(
      "ip",
      [
        "netns",
        "exec",
        cluster.client.ns,
        testPython(),
        join(import.meta.dirname, "..", "python", "stalled_readers.py"),
        gw.host.address,
        String(GATEWAY_PORT),
        hog.key,
        body,
        String(KEY_CONCURRENCY),
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    let out = "";
    readers.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await waitFor(() => out.includes("ready"), { what: "the stalled clients to get their headers" });
    expect(out.split("\n").filter((l) => l.startsWith("HTTP/1.1 200"))).toHaveLength(KEY_CONCURRENCY);

    // One more request of that key while its four are under way: refused, not queued.
    const fifth = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${hog.key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
    });
    expect(fifth.status).toBe(429);
    expect(Number(fifth.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await fifth.json()).toMatchObject({
      error: { type: "rate_limit_error", code: "too_many_concurrent_requests" },
    });

    // Another key is answered well before the four answers could have been generated in full.
    const other = await key("other");
    const answer = await new OpenAI({
      baseURL: `${gw.url}/v1`,
      apiKey: other.key,
      maxRetries: 0,
      timeout: 60_000,
    }).chat.completions.create({ model: "chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 });
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);

    // Each of the four is metered as its client leaving, with what it had generated.
    await waitFor(async () => (await usageOf(hog.id))?.requests === KEY_CONCURRENCY + 1, {
      what: "the stalled requests to be metered",
    });
    const hogUsage = await usageOf(hog.id);
    expect(hogUsage.errors).toBe(KEY_CONCURRENCY + 1);
    expect(hogUsage.completion_tokens).toBeGreaterThan(0);
    expect(hogUsage.completion_tokens).toBeLessThan(KEY_CONCURRENCY * 900);
  }, 120_000);
});
