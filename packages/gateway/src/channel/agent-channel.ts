import http2 from "node:http2";
import type { Duplex } from "node:stream";
import { LineSplitter, type Logger } from "@beta9/http";
import { HEARTBEAT_STREAM_PATH, Heartbeat, type HeartbeatAck } from "@beta9/protocol";
import { Compile } from "typebox/compile";
import type { AgentLink, MachineRegistry } from "../machines/registry.ts";

const checkHeartbeat = Compile(Heartbeat);
const PING_EVERY_MS = 15_000;
/**
 * Flow-control windows for answers coming back over the channel. HTTP/2's 64 KiB defaults would cap
 * a machine across the internet at 64 KiB per round trip for all its streams together; a slow client
 * still holds its own stream back at the per-stream window.
 */
const STREAM_WINDOW = 256 * 1024;
const SESSION_WINDOW = 8 * 1024 * 1024;
/**
 * No HPACK dynamic table either way (our SETTINGS tell the agent; the option tells our encoder): the
 * tables' entries were a few KB of every channel's memory, held for ten thousand channels, to save a
 * few hundred header bytes per request. Any HTTP/2 peer, old agents included, must honour it.
 */
const HPACK_TABLE_SIZE = 0;

/**
 * The gateway's end of one agent channel: an HTTP/2 client session over the socket the agent
 * opened. It holds the heartbeat stream open and answers every beat with an ack carrying the status
 * the gateway gives the machine.
 */
export class AgentChannel implements AgentLink {
  readonly machineId: string;
  readonly session: http2.ClientHttp2Session;
  readonly #registry: MachineRegistry;
  /** Not a child logger: one per channel is memory held for the rare line each channel writes. */
  readonly #log: Logger;
  #pinger: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(socket: Duplex, machineId: string, registry: MachineRegistry, log: Logger) {
    this.machineId = machineId;
    this.#registry = registry;
    this.#log = log;
    this.session = http2.connect(`http://agent.invalid`, {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW, headerTableSize: HPACK_TABLE_SIZE },
      maxDeflateDynamicTableSize: HPACK_TABLE_SIZE,
    });
    this.session.once("connect", () => this.session.setLocalWindowSize(SESSION_WINDOW));
    this.session.on("error", (err) => this.#log.debug({ err, machine_id: machineId }, "agent channel error"));
    this.session.on("close", () => this.#onClosed());
    socket.on("close", () => this.#onClosed());
    // The HTTP server's sockets allow half-open connections; an agent that went away must not linger.
    socket.on("end", () => this.close("agent closed the connection"));
  }

  open(): void {
    this.#registry.attach(this.machineId, this);
    this.#openHeartbeats();
    // Channels open in bursts (a gateway restart brings them all back at once); a random first delay
    // spreads their pings instead of firing thousands in one tick.
    const ping = () => {
      if (this.#closed || this.session.destroyed) return;
      this.session.ping((err) => {
        if (err) this.close("ping failed");
      });
    };
    // Then one interval: a new timer per ping would be garbage that outlives the young generation.
    this.#pinger = setTimeout(() => {
      this.#pinger = setInterval(ping, PING_EVERY_MS);
      this.#pinger.unref();
      ping();
    }, Math.random() * PING_EVERY_MS);
    this.#pinger.unref();
  }

  /** An ordinary HTTP request to the agent's control API, over the channel (docs/architecture.md §3). */
  request(init: {
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: string;
  }): http2.ClientHttp2Stream {
    const stream = this.session.request(
      { ":method": init.method, ":path": init.path, ...init.headers },
      { endStream: init.body === undefined },
    );
    if (init.body !== undefined) stream.end(init.body);
    return stream;
  }

  close(reason: string): void {
    if (this.#closed) return;
    this.#log.info({ reason, machine_id: this.machineId }, "closing agent channel");
    this.session.destroy();
    this.#onClosed();
  }

  #onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    this.#registry.detach(this.machineId, this);
  }

  #openHeartbeats(): void {
    const stream = this.session.request(
      { ":method": "POST", ":path": HEARTBEAT_STREAM_PATH, "content-type": "application/x-ndjson" },
      { endStream: false },
    );
    // Buffers, not setEncoding: the splitter decodes UTF-8 itself, and a string decoder per stream is
    // memory held by every channel.
    const lines = new LineSplitter(64 * 1024);
    stream.on("response", (headers) => {
      if (headers[":status"] !== 200) this.close(`heartbeat stream answered ${headers[":status"]}`);
    });
    stream.on("data", (chunk: Buffer) => {
      let batch: string[];
      try {
        batch = lines.push(chunk);
      } catch {
        this.close("heartbeat line too long");
        return;
      }
      for (const line of batch) this.#onBeat(line, stream);
    });
    stream.on("error", () => this.close("heartbeat stream failed"));
    stream.on("close", () => this.close("heartbeat stream closed"));
  }

  #onBeat(line: string, stream: http2.ClientHttp2Stream): void {
    let beat: unknown;
    try {
      beat = JSON.parse(line);
    } catch {
      beat = undefined;
    }
    if (!checkHeartbeat.Check(beat)) {
      this.#log.warn({ machine_id: this.machineId }, "agent sent a malformed heartbeat; ignored");
      return;
    }
    const status = this.#registry.heartbeat(this.machineId, {
      usage: beat.usage,
      runningJobs: beat.running_jobs,
      inference: beat.inference,
      runners: beat.runners,
    });
    if (!status) {
      this.close("machine no longer known");
      return;
    }
    const ack: HeartbeatAck = {
      seq: beat.seq,
      status,
      heartbeat_interval_seconds: this.#registry.cfg.heartbeatIntervalMs / 1000,
    };
    stream.write(`${JSON.stringify(ack)}\n`);
  }
}
