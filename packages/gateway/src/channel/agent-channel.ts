import http2 from "node:http2";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";
import { ChannelLineReader, LineSplitter, type Logger } from "@beta9/http";
import {
  CHANNEL_MAX_LINE,
  ChannelSwitch,
  HEARTBEAT_STREAM_PATH,
  Heartbeat,
  type HeartbeatAck,
  type MachineStatus,
} from "@beta9/protocol";
import { Compile } from "typebox/compile";
import type { AgentLink, MachineRegistry } from "../machines/registry.ts";

const checkHeartbeat = Compile(Heartbeat);
const checkSwitch = Compile(ChannelSwitch);
const PING_EVERY_MS = 15_000;
/** An agent that does not answer the switch to HTTP/2 within this long is taken for a broken one. */
const SWITCH_TIMEOUT_MS = 10_000;
/** How long an HTTP/2 session with nothing but heartbeats on it lives before the channel goes idle again. */
export const DEFAULT_CHANNEL_IDLE_MS = 60_000;
const SWITCH_H2 = `${JSON.stringify({ switch: "h2" } satisfies ChannelSwitch)}\n`;
const SWITCH_IDLE = `${JSON.stringify({ switch: "idle" } satisfies ChannelSwitch)}\n`;
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

type RequestInit = { method: string; path: string; headers?: Record<string, string>; body?: string };

/**
 * The gateway's end of one agent channel. Protocol 1 agents: an HTTP/2 client session over the
 * socket the agent opened, from the start. Protocol 2 agents: the socket carries heartbeat lines
 * while the gateway has nothing to ask (an nghttp2 session is ~22 KB of native memory per agent that
 * no setting shrinks), and becomes that HTTP/2 session on the first request (protocol/channel.ts).
 * Either way every beat is answered with an ack carrying the status the gateway gives the machine.
 */
export class AgentChannel implements AgentLink {
  readonly machineId: string;
  readonly #socket: Duplex;
  readonly #registry: MachineRegistry;
  /** Not a child logger: one per channel is memory held for the rare line each channel writes. */
  readonly #log: Logger;
  /** Whether this agent speaks the idle form (protocol 2): it may switch to HTTP/2 and back. */
  readonly #idleForm: boolean;
  #session: http2.ClientHttp2Session | undefined;
  /** Idle form: the agent's lines. Undefined once the socket is HTTP/2's. */
  #lines: ChannelLineReader | undefined;
  /** Sent our switch line; waiting for the agent's. */
  #switchTimer: NodeJS.Timeout | undefined;
  #switchStartedAt = 0;
  #heartbeats: http2.ClientHttp2Stream | undefined;
  #pinger: NodeJS.Timeout | undefined;
  /** Requests open on the session, heartbeats aside: none for a while and the channel goes idle. */
  #requests = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  /** We asked the agent to dial a new idle channel; this one closes gently once that one is up. */
  #retiring = false;
  #closed = false;

  constructor(socket: Duplex, machineId: string, registry: MachineRegistry, log: Logger, idleForm = false) {
    this.machineId = machineId;
    this.#socket = socket;
    this.#registry = registry;
    this.#log = log;
    // The switch needs a net.Socket (see #switchUp): the upgrade offers the idle form only on one.
    this.#idleForm = idleForm;
    socket.on("close", () => this.#onClosed());
    // The HTTP server's sockets allow half-open connections; an agent that went away must not linger.
    socket.on("end", () => this.close("agent closed the connection"));
  }

  /** The HTTP/2 session, while there is one (idle channels have none). */
  get session(): http2.ClientHttp2Session | undefined {
    return this.#session;
  }

  open(): void {
    this.#registry.attach(this.machineId, this);
    if (this.#idleForm) {
      // Acks are small lines: Nagle's wait would hold each one back for the agent's delayed ACK.
      (this.#socket as Socket).setNoDelay(true);
      this.#lines = new ChannelLineReader(CHANNEL_MAX_LINE);
      this.#socket.on("data", this.#onIdleData);
      return;
    }
    this.#startSession();
    this.#sessionReady();
  }

  /** An ordinary HTTP request to the agent's control API, over the channel (docs/architecture.md §3). */
  request(init: RequestInit): http2.ClientHttp2Stream {
    if (this.#closed) throw new Error("the agent channel is closed");
    if (!this.#session) this.#switchUp();
    const stream = this.#session!.request(
      { ":method": init.method, ":path": init.path, ...init.headers },
      { endStream: init.body === undefined },
    );
    if (init.body !== undefined) stream.end(init.body);
    if (this.#idleForm) {
      this.#requests++;
      clearTimeout(this.#idleTimer);
      stream.once("close", this.#requestClosed);
    }
    return stream;
  }

  /**
   * `graceful`: a newer channel of the same agent replaced this one. One we asked to be replaced (to go
   * idle) lets what still runs on it finish; any other is dead or stale and goes at once.
   */
  close(reason: string, graceful = false): void {
    if (this.#closed) return;
    if (graceful && this.#retiring && this.#session && !this.#session.destroyed) {
      this.#onClosed();
      this.#heartbeats?.close(http2.constants.NGHTTP2_NO_ERROR);
      this.#session.close();
      return;
    }
    this.#log.info({ reason, machine_id: this.machineId }, "closing agent channel");
    this.#onClosed();
    // A socket still "connecting" for the session (see #switchUp) would wait for that to end.
    if (this.#switchTimer) setConnecting(this.#socket as Socket, false);
    this.#session?.destroy();
    this.#socket.destroy();
  }

  #onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pinger);
    clearTimeout(this.#switchTimer);
    clearTimeout(this.#idleTimer);
    this.#registry.detach(this.machineId, this);
  }

  #startSession(): void {
    const socket = this.#socket;
    const session = http2.connect(`http://agent.invalid`, {
      createConnection: () => socket,
      settings: { initialWindowSize: STREAM_WINDOW, headerTableSize: HPACK_TABLE_SIZE },
      maxDeflateDynamicTableSize: HPACK_TABLE_SIZE,
    });
    this.#session = session;
    session.once("connect", () => session.setLocalWindowSize(SESSION_WINDOW));
    session.on("error", (err) => this.#log.debug({ err, machine_id: this.machineId }, "agent channel error"));
    session.on("close", () => this.#onClosed());
  }

  /** The session is up (or, for protocol 1, about to be): heartbeats move onto it, pings start. */
  #sessionReady(): void {
    this.#openHeartbeats();
    // Channels open in bursts (a gateway restart brings them all back at once); a random first delay
    // spreads their pings instead of firing thousands in one tick.
    const ping = () => {
      const session = this.#session;
      if (this.#closed || !session || session.destroyed || session.closed) return;
      session.ping((err) => {
        if (err && !session.closed) this.close("ping failed");
      });
    };
    // Then one interval: a new timer per ping would be garbage that outlives the young generation.
    this.#pinger = setTimeout(() => {
      this.#pinger = setInterval(ping, PING_EVERY_MS);
      this.#pinger.unref();
      ping();
    }, Math.random() * PING_EVERY_MS);
    this.#pinger.unref();
    if (this.#idleForm) this.#armIdle();
  }

  /**
   * Idle → HTTP/2. The caller wants a stream now, so the session is made now, and Node's HTTP/2 is
   * told the socket is still connecting: it queues our streams and writes nothing until "connect",
   * which we emit when the agent's switch line has come (the lines before it are still ours to read).
   * The agent, in turn, starts its HTTP/2 server only on our preface, so nothing of HTTP/2 comes
   * before its switch line.
   */
  #switchUp(): void {
    const socket = this.#socket as Socket;
    socket.write(SWITCH_H2);
    this.#switchStartedAt = performance.now();
    setConnecting(socket, true);
    this.#startSession();
    this.#switchTimer = setTimeout(
      () => this.close("agent did not answer the switch to HTTP/2"),
      SWITCH_TIMEOUT_MS,
    );
    this.#switchTimer.unref();
  }

  /** The agent answered our switch: the socket is HTTP/2's from the next byte. */
  #switched(): void {
    const socket = this.#socket as Socket;
    clearTimeout(this.#switchTimer);
    this.#switchTimer = undefined;
    socket.off("data", this.#onIdleData);
    this.#lines = undefined;
    setConnecting(socket, false);
    socket.emit(socket instanceof TLSSocket ? "secureConnect" : "connect");
    this.#sessionReady();
    const switchMs = Math.round((performance.now() - this.#switchStartedAt) * 100) / 100;
    this.#log.info({ machine_id: this.machineId, switch_ms: switchMs }, "agent channel switched to HTTP/2");
  }

  readonly #onIdleData = (chunk: Buffer): void => {
    const lines = this.#lines;
    if (!lines) return;
    try {
      lines.push(chunk, this.#onIdleLine);
    } catch {
      this.close("agent sent a line too long");
    }
  };

  /** One line of the idle form; false when the lines end here (switched, or closed). */
  readonly #onIdleLine = (line: string): boolean => {
    const msg = parse(line);
    if (checkSwitch.Check(msg)) {
      if (msg.switch !== "h2" || this.#switchTimer === undefined) {
        this.close("agent sent a switch nobody asked for");
        return false;
      }
      if (this.#lines?.rest().length) {
        this.close("agent wrote past its switch line before the HTTP/2 preface");
        return false;
      }
      this.#switched();
      return false;
    }
    const status = this.#onBeat(msg);
    // After our switch line the agent reads HTTP/2 from us; its beats are acked there.
    if (status && this.#switchTimer === undefined)
      this.#socket.write(this.#ackLine(msg as Heartbeat, status));
    return !this.#closed;
  };

  readonly #requestClosed = (): void => {
    if (--this.#requests === 0) this.#armIdle();
  };

  #armIdle(): void {
    if (this.#closed || this.#retiring) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#requests > 0 || this.#closed || !this.#heartbeats) return;
      this.#retiring = true;
      this.#heartbeats.write(SWITCH_IDLE);
      this.#log.info(
        { machine_id: this.machineId },
        "agent channel idle: the agent is asked for an idle one",
      );
    }, this.#registry.cfg.channelIdleMs ?? DEFAULT_CHANNEL_IDLE_MS);
    this.#idleTimer.unref();
  }

  #openHeartbeats(): void {
    const stream = this.#session!.request(
      { ":method": "POST", ":path": HEARTBEAT_STREAM_PATH, "content-type": "application/x-ndjson" },
      { endStream: false },
    );
    this.#heartbeats = stream;
    // Buffers, not setEncoding: the splitter decodes UTF-8 itself, and a string decoder per stream is
    // memory held by every channel.
    const lines = new LineSplitter(CHANNEL_MAX_LINE);
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
      for (const line of batch) {
        const beat = parse(line);
        const status = this.#onBeat(beat);
        if (status) stream.write(this.#ackLine(beat as Heartbeat, status));
      }
    });
    stream.on("error", () => this.close("heartbeat stream failed"));
    stream.on("close", () => this.close("heartbeat stream closed"));
  }

  /** A heartbeat from either form: the machine's status to ack it with, or undefined (no ack). */
  #onBeat(beat: unknown): MachineStatus | undefined {
    if (!checkHeartbeat.Check(beat)) {
      this.#log.warn({ machine_id: this.machineId }, "agent sent a malformed heartbeat; ignored");
      return undefined;
    }
    const status = this.#registry.heartbeat(this.machineId, {
      usage: beat.usage,
      runningJobs: beat.running_jobs,
      inference: beat.inference,
      runners: beat.runners,
    });
    if (!status) this.close("machine no longer known");
    return status;
  }

  #ackLine(beat: Heartbeat, status: MachineStatus): string {
    return heartbeatAckLine(beat.seq, status, this.#registry.cfg.heartbeatIntervalMs / 1000);
  }
}

/** Ack lines after their seq, by status, for one interval (the gateway's: one at a time in practice). */
const ackTails = { interval: Number.NaN, byStatus: new Map<MachineStatus, string>() };

/**
 * The line that acks a heartbeat: the bytes of `JSON.stringify(ack)` and a newline, made from a kept
 * tail per status so that a beat's ack is one string, not an object and its serialisation
 * (bench/heartbeats: the gateway acks 2,000 beats a second at 10,000 agents).
 */
export function heartbeatAckLine(seq: number, status: MachineStatus, intervalSeconds: number): string {
  if (ackTails.interval !== intervalSeconds) {
    ackTails.interval = intervalSeconds;
    ackTails.byStatus.clear();
  }
  let tail = ackTails.byStatus.get(status);
  if (tail === undefined) {
    const rest = { status, heartbeat_interval_seconds: intervalSeconds } satisfies Omit<HeartbeatAck, "seq">;
    tail = `,${JSON.stringify(rest).slice(1)}\n`;
    ackTails.byStatus.set(status, tail);
  }
  return `{"seq":${JSON.stringify(seq)}${tail}`;
}

/**
 * `connecting` is a plain field of net.Socket (read-only in its types); Node's Http2Session waits for
 * the connect event of a socket that has it set, exactly as for a socket it dials itself.
 */
function setConnecting(socket: Socket, connecting: boolean): void {
  (socket as unknown as { connecting: boolean }).connecting = connecting;
}

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}
