import { LineSplitter, type Logger } from "@beta9/http";
import {
  Beta9Error,
  CHANNEL_MAX_LINE,
  ChannelSwitch,
  HEARTBEAT_STREAM_PATH,
  type Heartbeat,
  HeartbeatAck,
  type InferenceReport,
  type JobRunners,
  type Usage,
} from "@beta9/protocol";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { Compile } from "typebox/compile";
import type { AgentState } from "../state.ts";

const checkAck = Compile(HeartbeatAck);
const checkSwitch = Compile(ChannelSwitch);

export interface HeartbeatContext {
  state: AgentState;
  log: Logger;
  intervalMs: () => number;
  sampleUsage: () => Promise<Usage>;
  /** Engines, served models and free memory, when the agent serves inference. */
  inferenceReport?: () => InferenceReport;
  /** The job runners this machine has, once the agent found them. */
  runners?: () => JobRunners | undefined;
  /** Tells of a change in the models served (start, ready, error, stop): a beat goes out at once. */
  inference?: { onChange(listener: () => void): () => void };
  fromGateway: (req: FastifyRequest) => boolean;
  /** The gateway stopped acking: drop the channel so the connector dials again. */
  onSilentGateway: () => void;
  /** The gateway told us a new interval. */
  onInterval: (ms: number) => void;
  /** The gateway asked for a new channel in the idle form (protocol 2): dial it, keep this one meanwhile. */
  onRedial?: () => void;
}

/**
 * How long the gateway may leave heartbeats unacknowledged before the channel is dropped: three
 * intervals, but never under 10 s, so a gateway busy for a few seconds (a loaded machine, a long
 * GC) is not taken for a dead one when agents beat every second.
 */
export function ackSilenceLimitMs(intervalMs: number): number {
  return Math.max(3 * intervalMs + 1_000, 10_000);
}

/** A change is beaten this soon, so a burst of them (a start, then ready) goes out as one beat. */
const CHANGE_DEBOUNCE_MS = 50;
/** Beats for changes come no closer than this: a model flapping does not flood the gateway. */
const CHANGE_MIN_GAP_MS = 250;

/**
 * One channel's beats, whatever carries them (the HTTP/2 heartbeat stream, or the idle channel's
 * lines): a Heartbeat line every interval, and at once when the models served change (so a request
 * right after a start or stop finds the gateway up to date). Acks missing past ackSilenceLimitMs mean
 * the gateway is gone even if TCP has not noticed (a cut link), so the channel is dropped and dialled
 * again.
 */
export class Heartbeats {
  readonly #ctx: HeartbeatContext;
  readonly #write: (line: string) => void;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  /** A beat for a change is scheduled (it replaces the interval's next one). */
  #soon = false;
  #stopped = false;
  readonly #unsubscribe: (() => void) | undefined;

  constructor(ctx: HeartbeatContext, write: (line: string) => void) {
    this.#ctx = ctx;
    this.#write = write;
    this.#unsubscribe = ctx.inference?.onChange(() => this.#beatSoon());
  }

  /** Beat now and on; the gateway's silence counts from now. */
  start(): Promise<void> {
    this.#ctx.state.lastAckAt = Date.now();
    return this.#beat();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#unsubscribe?.();
  }

  /** A line from the gateway: an ack is taken in; a switch line is returned for the carrier to act on. */
  onLine(line: string): ChannelSwitch["switch"] | undefined {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return undefined;
    }
    if (checkSwitch.Check(msg)) return msg.switch;
    if (!checkAck.Check(msg)) return undefined;
    const ctx = this.#ctx;
    const s = ctx.state;
    s.lastAckAt = Date.now();
    if (s.status !== msg.status)
      ctx.log.info({ status: msg.status }, `gateway says this machine is ${msg.status}`);
    s.status = msg.status;
    const before = ctx.intervalMs();
    ctx.onInterval(msg.heartbeat_interval_seconds * 1000);
    // A gateway that wants beats more often gets the next one on the new schedule: after the old,
    // longer wait its liveness check (and our own silence check) would take the gap for a failure.
    if (this.#timer !== undefined && !this.#soon && ctx.intervalMs() < before) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.#beat(), ctx.intervalMs());
    }
    return undefined;
  }

  async #beat(): Promise<void> {
    const ctx = this.#ctx;
    const s = ctx.state;
    this.#timer = undefined;
    this.#soon = false;
    if (this.#stopped) return;
    if (s.lastAckAt !== null && Date.now() - s.lastAckAt > ackSilenceLimitMs(ctx.intervalMs())) {
      ctx.log.warn("gateway stopped acknowledging heartbeats; reconnecting");
      this.stop();
      ctx.onSilentGateway();
      return;
    }
    try {
      s.usage = await ctx.sampleUsage();
    } catch (err) {
      ctx.log.debug({ err }, "usage sample failed");
    }
    if (this.#stopped || !s.usage) return;
    const hb: Heartbeat = {
      seq: this.#seq++,
      sent_at_ms: Date.now(),
      usage: s.usage,
      running_jobs: s.runningJobs,
      inference_status: s.inferenceStatus,
      ...(ctx.inferenceReport ? { inference: ctx.inferenceReport() } : {}),
    };
    const runners = ctx.runners?.();
    if (runners) hb.runners = runners;
    this.#write(`${JSON.stringify(hb)}\n`);
    s.lastHeartbeatAt = Date.now();
    s.heartbeatsSent++;
    // A change seen while this beat sampled is in it (the report was read just above).
    clearTimeout(this.#timer);
    this.#soon = false;
    this.#timer = setTimeout(() => void this.#beat(), ctx.intervalMs());
  }

  #beatSoon(): void {
    if (this.#stopped || this.#soon) return;
    this.#soon = true;
    const sinceLast = Date.now() - (this.#ctx.state.lastHeartbeatAt ?? 0);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => void this.#beat(),
      Math.max(CHANGE_DEBOUNCE_MS, CHANGE_MIN_GAP_MS - sinceLast),
    );
  }
}

/**
 * The heartbeat stream the gateway opens on the channel's HTTP/2 session: our beats on the response,
 * its acks on the request. `{"switch":"idle"}` there asks for a new channel in the idle form.
 */
export const heartbeatStream: FastifyPluginAsync<HeartbeatContext> = async (app, ctx) => {
  app.addContentTypeParser("application/x-ndjson", (_req, payload, done) => done(null, payload));

  app.post(HEARTBEAT_STREAM_PATH, async (req, reply) => {
    if (!ctx.fromGateway(req))
      throw new Beta9Error("not_found", "the heartbeat stream exists only on the agent channel");
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const beats = new Heartbeats(ctx, (line) => res.write(line));
    const lines = new LineSplitter(CHANNEL_MAX_LINE);
    req.raw.setEncoding("utf8");
    req.raw.on("data", (chunk: string) => {
      let batch: string[];
      try {
        batch = lines.push(chunk);
      } catch {
        res.destroy();
        return;
      }
      for (const line of batch) if (beats.onLine(line) === "idle") ctx.onRedial?.();
    });
    const stop = () => beats.stop();
    res.on("close", stop);
    req.raw.on("close", stop);
    await beats.start();
  });
};
