import type { IncomingMessage } from "node:http";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import v8 from "node:v8";
import vm from "node:vm";
import {
  CHANNEL_PATH,
  CHANNEL_PROTOCOL,
  HEARTBEAT_STREAM_PATH,
  type Heartbeat,
  type HeartbeatAck,
  MACHINE_ID_HEADER,
} from "@beta9/protocol";
import { DIALECTS, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, hardware, harness } from "./harness.ts";

/*
 * What the gateway keeps for each agent channel is what 10,000 agents cost it in memory
 * (bench/heartbeats). A real gateway (in this process, so its heap can be inspected) and a real
 * client of the channel protocol: it upgrades, serves HTTP/2 on the socket and answers the
 * heartbeat stream as an agent does.
 */

// V8's own collector, so the test can tell kept objects from ones not yet collected.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

let h: Harness;
let port: number;
const upgrades: WeakRef<IncomingMessage>[] = [];

beforeAll(async () => {
  h = await harness(DIALECTS[0]);
  // Runs before the gateway's own listener: each upgrade request is watched, never held.
  h.gw.app.server.prependListener("upgrade", (req: IncomingMessage) => upgrades.push(new WeakRef(req)));
  await h.gw.app.listen({ host: "127.0.0.1", port: 0 });
  port = (h.gw.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await h?.gw.close();
});

/** A heartbeat whose one non-ASCII character is split between two writes (two DATA frames). */
function splitBeat(seq: number): [Buffer, Buffer] {
  const beat: Heartbeat = {
    seq,
    sent_at_ms: Date.now(),
    usage: { cpu_percent: 1, memory_used_bytes: 1, memory_total_bytes: 2, gpus: [] },
    running_jobs: 0,
    inference_status: "prêt",
  };
  const bytes = Buffer.from(`${JSON.stringify(beat)}\n`);
  const cut = bytes.indexOf(Buffer.from("ê")) + 1;
  return [bytes.subarray(0, cut), bytes.subarray(cut)];
}

/** Join as `id`, open the channel as an agent does, and send one heartbeat; acks are collected. */
async function connectAgent(id: string): Promise<{ acks: HeartbeatAck[]; socket: Duplex }> {
  const token = (await h.call("POST", "/api/v1/tokens", { body: {} })).body.token as string;
  const joined = await h.call("POST", "/api/v1/machines/join", {
    key: null,
    body: { token, machine_id: id, hostname: id, agent_version: "test", hardware },
  });
  expect(joined.status).toBe(201);
  const acks: HeartbeatAck[] = [];
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    if (headers[":path"] !== HEARTBEAT_STREAM_PATH) {
      stream.respond({ ":status": 404 });
      stream.end();
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/x-ndjson" });
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) if (line) acks.push(JSON.parse(line) as HeartbeatAck);
    });
    const [first, rest] = splitBeat(7);
    stream.write(first, () => stream.write(rest));
  });
  const socket = await new Promise<Duplex>((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      path: CHANNEL_PATH,
      agent: false,
      headers: {
        connection: "Upgrade",
        upgrade: CHANNEL_PROTOCOL,
        authorization: `Bearer ${joined.body.credential}`,
        [MACHINE_ID_HEADER]: id,
      },
    });
    req.on("upgrade", (_res, s, head) => {
      if (head.length > 0) s.unshift(head);
      server.emit("connection", s);
      resolve(s);
    });
    req.on("response", (res) => reject(new Error(`channel answered ${res.statusCode}`)));
    req.on("error", reject);
    req.end();
  });
  return { acks, socket };
}

describe("what the gateway keeps per agent channel", () => {
  it("does not keep an agent's upgrade request (its headers and credential) while its channel is open", async () => {
    const agent = await connectAgent("kept-light");
    await waitFor(() => h.gw.registry.isConnected("kept-light"), { what: "the channel to open" });
    expect(upgrades).toHaveLength(1);
    // Collected within a few cycles once nothing holds it; a channel that keeps it never lets go.
    await waitFor(
      () => {
        gc();
        return upgrades[0]!.deref() === undefined;
      },
      { timeoutMs: 10_000, what: "the upgrade request to be collected" },
    );
    // The channel is still up, and its heartbeat (a character split across frames) was acknowledged.
    await waitFor(() => agent.acks.length > 0, { what: "the heartbeat's ack" });
    expect(agent.acks[0]).toMatchObject({ seq: 7, status: "READY" });
    expect(h.gw.registry.isConnected("kept-light")).toBe(true);
    agent.socket.destroy();
  });
});
