import { request } from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import {
  AGENT_PROTOCOL_HEADER,
  AGENT_VERSION_HEADER,
  CHANNEL_PATH,
  CHANNEL_PROTOCOL,
  HEARTBEAT_STREAM_PATH,
  type Heartbeat,
  MACHINE_ID_HEADER,
} from "@beta9/protocol";
import { type GatewayProc, startGateway, testModelPath, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { joinBody } from "./harness.ts";

/*
 * Clients of the channel protocol that misbehave, against a real gateway: garbage, oversized lines,
 * a switch nobody asked for, a switch never answered, and clients that lie about their protocol. Each
 * costs only its own channel; the gateway goes on serving the others.
 */

let gw: GatewayProc;
const sockets: Duplex[] = [];
beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s", "--unhealthy-after", "3s"] });
}, 60_000);
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await gw?.proc.stop();
});

let machines = 0;

interface RawChannel {
  id: string;
  socket: Duplex;
  /** The protocol the gateway's 101 said the channel speaks. */
  protocol: string | undefined;
  /** Every byte the gateway sent, as text. */
  received(): string;
  closed: Promise<void>;
  isClosed(): boolean;
  /**
   * Serve the channel with `server` (HTTP/2, as an agent of protocol 1 does): every byte the gateway
   * sent since its 101, the preface among them, goes to the server first, none read twice.
   */
  serveWith(server: http2.Http2Server): void;
}

/** Join a machine and open its channel claiming `protocol`; nothing is written after the 101. */
async function openChannel(protocol: number): Promise<RawChannel> {
  const id = `raw-${++machines}`;
  const token = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", {})).body.token;
  const joined = await fetch(`${gw.url}/api/v1/machines/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(joinBody(token, id)),
  });
  expect(joined.status).toBe(201);
  const { credential } = (await joined.json()) as { credential: string };
  return new Promise((resolve, reject) => {
    const req = request(`${gw.url}${CHANNEL_PATH}`, {
      headers: {
        connection: "Upgrade",
        upgrade: CHANNEL_PROTOCOL,
        authorization: `Bearer ${credential}`,
        [MACHINE_ID_HEADER]: id,
        [AGENT_PROTOCOL_HEADER]: String(protocol),
        [AGENT_VERSION_HEADER]: "0.1.0",
      },
    });
    req.on("upgrade", (res, socket, head) => {
      sockets.push(socket);
      // What came with the 101 (a protocol 1 gateway's HTTP/2 preface may) is the gateway's too.
      let text = head.toString("latin1");
      const bytes: Buffer[] = [head];
      let closed = false;
      const collect = (c: Buffer) => {
        text += c.toString("latin1");
        bytes.push(c);
      };
      socket.on("data", collect);
      socket.on("error", () => {});
      const closedP = new Promise<void>((r) =>
        socket.once("close", () => {
          closed = true;
          r();
        }),
      );
      const header = res.headers[AGENT_PROTOCOL_HEADER];
      resolve({
        id,
        socket,
        protocol: typeof header === "string" ? header : undefined,
        received: () => text,
        closed: closedP,
        isClosed: () => closed,
        serveWith: (server) => {
          socket.off("data", collect);
          socket.pause();
          socket.unshift(Buffer.concat(bytes));
          server.emit("connection", socket);
        },
      });
    });
    req.on("response", (res) => reject(new Error(`the gateway answered ${res.statusCode}`)));
    req.on("error", reject);
    req.end();
  });
}

function beat(seq: number): string {
  const hb: Heartbeat = {
    seq,
    sent_at_ms: Date.now(),
    usage: { cpu_percent: 1, memory_used_bytes: 1, memory_total_bytes: 24 * 2 ** 30, gpus: [] },
    running_jobs: 0,
    inference_status: "ready",
    inference: {
      engines: [{ engine: "builtin", installed: true }],
      models: [],
      memory_free_bytes: 20 * 2 ** 30,
      vram_free_bytes: null,
    },
  };
  return `${JSON.stringify(hb)}\n`;
}

const status = async (id: string) =>
  (
    await gw.api<{ machines: { id: string; status: string }[] }>("GET", "/api/v1/machines")
  ).body.machines.find((m) => m.id === id)?.status;

/** A well-behaved idle channel still gets its acks: whatever the others did cost only their channels. */
async function gatewayStillServes(): Promise<void> {
  const ch = await openChannel(2);
  ch.socket.write(beat(0));
  await waitFor(() => ch.received().includes('"seq":0'), { what: "an ack on a fresh channel" });
  ch.socket.destroy();
}

describe("the idle channel against hostile clients", () => {
  it("ignores garbage lines and malformed beats, and acks the next good one", async () => {
    const ch = await openChannel(2);
    expect(ch.protocol).toBe("2");
    ch.socket.write('not json\n{"seq":"x"}\n\n[1,2]\n');
    ch.socket.write(beat(7));
    await waitFor(() => ch.received().includes('"seq":7'), { what: "the ack of the good beat" });
    const ack = JSON.parse(ch.received().trim().split("\n").at(-1)!) as { seq: number; status: string };
    expect(ack).toEqual(expect.objectContaining({ seq: 7, status: "READY" }));
    expect(await status(ch.id)).toBe("READY");
    expect(ch.isClosed()).toBe(false);
  });

  it("acks a machine that adds fields of its own to its beat, and shows none of them to users", async () => {
    const ch = await openChannel(2);
    const hb = JSON.parse(beat(3)) as Heartbeat & Record<string, unknown>;
    const lie = {
      ...hb,
      note: "<script>alert(1)</script>",
      usage: { ...hb.usage, operator_key: "b9_stolen" },
      inference: { ...hb.inference, shell: "rm -rf /" },
    };
    ch.socket.write(`${JSON.stringify(lie)}\n`);
    await waitFor(() => ch.received().includes('"seq":3'), { what: "the ack of the padded beat" });
    const list = await gw.api<{ machines: { id: string }[] }>("GET", "/api/v1/machines");
    const one = await gw.api<Record<string, unknown>>("GET", `/api/v1/machines/${ch.id}`);
    for (const body of [
      JSON.stringify(list.body.machines.find((m) => m.id === ch.id)),
      JSON.stringify(one.body),
    ])
      for (const added of ["script", "operator_key", "b9_stolen", "shell", "rm -rf"])
        expect(body).not.toContain(added);
    expect(one.body).toMatchObject({ status: "READY", usage: { cpu_percent: 1 } });
    expect(ch.isClosed()).toBe(false);
  });

  it("closes a channel whose line never ends (over 64 KiB)", async () => {
    const ch = await openChannel(2);
    ch.socket.write(beat(0));
    await waitFor(() => ch.received().includes('"seq":0'), { what: "the first ack" });
    ch.socket.write("x".repeat(80 * 1024));
    await ch.closed;
    await gatewayStillServes();
  });

  it("closes a channel that switches when nobody asked", async () => {
    for (const line of ['{"switch":"h2"}\n', '{"switch":"idle"}\n']) {
      const ch = await openChannel(2);
      ch.socket.write(beat(0) + line);
      await ch.closed;
      // No HTTP/2 was ever spoken to it.
      expect(ch.received()).not.toContain("PRI * HTTP/2.0");
    }
    await gatewayStillServes();
  });

  it("closes a channel that never answers the switch, having written nothing after its switch line", async () => {
    const ch = await openChannel(2);
    ch.socket.write(beat(0));
    // Beats go on, so only the switch can be what closes it.
    const beating = setInterval(() => ch.socket.write(beat(1)), 500);
    try {
      await waitFor(async () => (await status(ch.id)) === "READY", { what: "the raw machine READY" });
      // A deployment placed on it makes the gateway call the machine: the channel must switch.
      void gw.api("POST", "/api/v1/deployments", {
        name: "nobody-home",
        source: testModelPath(),
        min_replicas: 1,
        max_replicas: 1,
      });
      await waitFor(() => ch.received().includes('{"switch":"h2"}'), {
        what: "the gateway's switch line",
        timeoutMs: 30_000,
      });
      await ch.closed;
      const text = ch.received();
      // After its switch line the gateway wrote nothing: its HTTP/2 waited for our answer.
      expect(text.slice(text.indexOf('{"switch":"h2"}') + '{"switch":"h2"}\n'.length)).toBe("");
      await waitFor(
        () => gw.proc.logs().some((e) => e.reason === "agent did not answer the switch to HTTP/2"),
        { what: "the reason in the gateway's log" },
      );
    } finally {
      clearInterval(beating);
      await gw.api("DELETE", "/api/v1/deployments/nobody-home");
    }
    await gatewayStillServes();
  }, 60_000);

  it("closes a channel that claims protocol 2 but serves HTTP/2 at once, and never calls it READY", async () => {
    const ch = await openChannel(2);
    // What an agent of protocol 1 does after the 101: its HTTP/2 server speaks first (SETTINGS).
    ch.serveWith(http2.createServer());
    await ch.closed;
    expect(await status(ch.id)).not.toBe("READY");
    await gatewayStillServes();
  }, 30_000);

  it("closes a channel that claims protocol 1 but writes heartbeat lines", async () => {
    const ch = await openChannel(1);
    expect(ch.protocol).toBe("1");
    // The gateway speaks HTTP/2 first to a protocol 1 agent.
    await waitFor(() => ch.received().startsWith("PRI * HTTP/2.0"), { what: "the gateway's HTTP/2 preface" });
    ch.socket.write(beat(0));
    await ch.closed;
    await gatewayStillServes();
  });

  it("serves an agent of protocol 1 over HTTP/2 from the start, heartbeats and requests alike", async () => {
    const ch = await openChannel(1);
    const paths: string[] = [];
    const server = http2.createServer();
    server.on("stream", (stream, headers) => {
      const path = String(headers[":path"]);
      paths.push(path);
      if (path !== HEARTBEAT_STREAM_PATH) {
        stream.respond({ ":status": 503, "content-type": "application/json" });
        stream.end(JSON.stringify({ error: { code: "unavailable", message: "not here" } }));
        return;
      }
      stream.respond({ ":status": 200, "content-type": "application/x-ndjson" });
      // Beats go on while the test runs: a machine silent for 3 s would be closed, whatever its protocol.
      let seq = 0;
      stream.write(beat(seq++));
      const beating = setInterval(() => stream.write(beat(seq++)), 500);
      stream.on("close", () => clearInterval(beating));
      stream.resume();
    });
    ch.serveWith(server);
    await waitFor(async () => (await status(ch.id)) === "READY", { what: "the protocol 1 machine READY" });
    void gw.api("POST", "/api/v1/deployments", {
      name: "old-agent-model",
      source: testModelPath(),
      min_replicas: 1,
      max_replicas: 1,
    });
    try {
      await waitFor(() => paths.includes("/inference/pull"), {
        what: "a request over HTTP/2",
        timeoutMs: 30_000,
      });
      // A switch line sent to it would be garbage to its HTTP/2 server, which would close the channel.
      expect(ch.isClosed()).toBe(false);
    } finally {
      ch.socket.destroy();
      await gw.api("DELETE", "/api/v1/deployments/old-agent-model");
    }
  }, 60_000);
});
