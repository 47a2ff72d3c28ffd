/**
 * Simulated agents for benches: each joins a real b9gateway as the real agent does (a join token
 * traded for a credential, then the agent channel: an HTTP upgrade after which this process is the
 * HTTP/2 server and the gateway the client). What an agent answers is up to the bench: it hands each
 * stream the gateway opens to its agent's `onStream`. An agent that claims protocol 2 and has
 * `onIdleChannel` gets the channel's idle form (heartbeat lines on the socket) instead.
 */
import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import {
  AGENT_PROTOCOL_HEADER,
  CHANNEL_PATH,
  CHANNEL_PROTOCOL,
  type Hardware,
  IDLE_CHANNEL_PROTOCOL,
  type JoinRequest,
  type JoinResponse,
  MACHINE_ID_HEADER,
} from "@beta9/protocol";

/** A workstation with one GPU: what every simulated agent reports. */
export const SIM_HARDWARE: Hardware = {
  os: "linux",
  arch: "x64",
  cpu_model: "AMD EPYC 7763 64-Core Processor",
  cpu_cores: 16,
  memory_total_bytes: 128 * 1024 ** 3,
  gpus: [
    {
      index: 0,
      vendor: "nvidia",
      name: "NVIDIA GeForce RTX 4090",
      memory_total_bytes: 24 * 1024 ** 3,
      memory_used_bytes: 512 * 1024 ** 2,
      utilization_percent: 0,
      unified_memory: false,
      driver_version: "550.54.14",
      uuid: "GPU-00000000-0000-0000-0000-000000000000",
      backend: "cuda",
    },
  ],
};

/** What a simulated agent must have: an id, its credential once joined, and its streams' handler. */
export interface ChannelAgent {
  readonly id: string;
  credential: string;
  socket: Duplex | undefined;
  /** A stream the gateway opened over the channel; answer 404 to what it does not serve. */
  onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void;
  /** The gateway started the channel in its idle form: the socket carries lines, not HTTP/2. */
  onIdleChannel?(socket: Duplex): void;
}

/**
 * One HTTP/2 server for all simulated agents, as the real agent serves its channel: each upgraded
 * socket is handed over with `emit("connection")`; the session it makes is tied to its agent.
 */
export class AgentServer {
  readonly h2: http2.Http2Server;
  readonly #bySession = new WeakMap<http2.Http2Session, ChannelAgent>();
  #pending: ChannelAgent | undefined;

  constructor() {
    this.h2 = http2.createServer({});
    this.h2.on("session", (session) => {
      if (this.#pending) this.#bySession.set(session, this.#pending);
      session.on("error", () => {});
    });
    this.h2.on("sessionError", () => {});
    this.h2.on("stream", (stream, headers) => {
      const agent = this.#bySession.get(stream.session as http2.Http2Session);
      if (!agent) {
        stream.respond({ ":status": 404 });
        stream.end();
        return;
      }
      agent.onStream(stream, headers);
    });
  }

  serve(agent: ChannelAgent, socket: Duplex): void {
    this.#pending = agent;
    try {
      this.h2.emit("connection", socket);
    } finally {
      this.#pending = undefined;
    }
  }
}

/** Trade a join token for the agent's credential, as `b9agent init` does. */
export async function joinAgent(
  base: string,
  token: string,
  agent: ChannelAgent,
  hardware: Hardware = SIM_HARDWARE,
): Promise<void> {
  const body: JoinRequest = {
    token,
    machine_id: agent.id,
    hostname: `${agent.id}.bench.invalid`,
    agent_version: "bench",
    hardware,
  };
  const res = await fetch(`${base}/api/v1/machines/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`join answered ${res.status}: ${text.slice(0, 200)}`);
  agent.credential = (JSON.parse(text) as JoinResponse).credential;
}

/**
 * Open the agent channel: upgrade, then serve HTTP/2 on the socket for the gateway, or hand it to the
 * agent's `onIdleChannel` when `protocol` ≥ 2 and the gateway chose the idle form.
 */
export function openChannel(
  gw: { host: string; port: number },
  server: AgentServer,
  agent: ChannelAgent,
  protocol = 1,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: gw.host,
      port: gw.port,
      path: CHANNEL_PATH,
      method: "GET",
      agent: false,
      timeout: 30_000,
      headers: {
        connection: "Upgrade",
        upgrade: CHANNEL_PROTOCOL,
        authorization: `Bearer ${agent.credential}`,
        [MACHINE_ID_HEADER]: agent.id,
        [AGENT_PROTOCOL_HEADER]: String(protocol),
      },
    });
    req.on("upgrade", (res, socket, head) => {
      socket.setTimeout(0);
      socket.on("error", () => {});
      socket.once("end", () => socket.destroy());
      if (head.length > 0) socket.unshift(head);
      agent.socket = socket;
      if (agent.onIdleChannel && Number(res.headers[AGENT_PROTOCOL_HEADER]) >= IDLE_CHANNEL_PROTOCOL)
        agent.onIdleChannel(socket);
      else server.serve(agent, socket);
      resolve();
    });
    req.on("response", (res) => {
      res.resume();
      reject(new Error(`channel answered ${res.statusCode} instead of 101`));
    });
    req.on("timeout", () => req.destroy(new Error("timed out opening the channel")));
    req.on("error", reject);
    req.end();
  });
}
