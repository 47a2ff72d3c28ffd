import { LineSplitter, type Logger } from "@beta9/http";
import {
  Beta9Error,
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
 * The heartbeat stream the gateway opens on the channel: we write a Heartbeat line every interval and
 * read its HeartbeatAck lines, and beat at once when the models served change (so a request right after
 * a start or stop finds the gateway up to date). Acks missing past ackSilenceLimitMs mean the gateway is gone even if
 * TCP has not noticed (a cut link), so the channel is dropped and dialled again.
 */
export const heartbeatStream: FastifyPluginAsync<HeartbeatContext> = async (app, ctx) => {
  app.addContentTypeParser("application/x-ndjson", (_req, payload, done) => done(null, payload));

  app.post(HEARTBEAT_STREAM_PATH, async (req, reply) => {
    if (!ctx.fromGateway(req))
      throw new Beta9Error("not_found", "the heartbeat stream exists only on the agent channel");
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const s = ctx.state;
    let seq = 0;
    let timer: NodeJS.Timeout | undefined;
    /** A beat for a change is scheduled (it replaces the interval's next one). */
    let soon = false;
    let closed = false;
    const lines = new LineSplitter(64 * 1024);

    const beat = async () => {
      timer = undefined;
      soon = false;
      if (closed) return;
      if (s.lastAckAt !== null && Date.now() - s.lastAckAt > ackSilenceLimitMs(ctx.intervalMs())) {
        ctx.log.warn("gateway stopped acknowledging heartbeats; reconnecting");
        closed = true;
        ctx.onSilentGateway();
        return;
      }
      try {
        s.usage = await ctx.sampleUsage();
      } catch (err) {
        ctx.log.debug({ err }, "usage sample failed");
      }
      if (closed || !s.usage) return;
      const hb: Heartbeat = {
        seq: seq++,
        sent_at_ms: Date.now(),
        usage: s.usage,
        running_jobs: s.runningJobs,
        inference_status: s.inferenceStatus,
        ...(ctx.inferenceReport ? { inference: ctx.inferenceReport() } : {}),
      };
      const runners = ctx.runners?.();
      if (runners) hb.runners = runners;
      res.write(`${JSON.stringify(hb)}\n`);
      s.lastHeartbeatAt = Date.now();
      s.heartbeatsSent++;
      // A change seen while this beat sampled is in it (the report was read just above).
      clearTimeout(timer);
      soon = false;
      timer = setTimeout(() => void beat(), ctx.intervalMs());
    };

    const beatSoon = () => {
      if (closed || soon) return;
      soon = true;
      const sinceLast = Date.now() - (s.lastHeartbeatAt ?? 0);
      clearTimeout(timer);
      timer = setTimeout(() => void beat(), Math.max(CHANGE_DEBOUNCE_MS, CHANGE_MIN_GAP_MS - sinceLast));
    };
    const unsubscribe = ctx.inference?.onChange(beatSoon);

    req.raw.setEncoding("utf8");
    req.raw.on("data", (chunk: string) => {
      let batch: string[];
      try {
        batch = lines.push(chunk);
      } catch {
        res.destroy();
        return;
      }
      for (const line of batch) {
        let ack: unknown;
        try {
          ack = JSON.parse(line);
        } catch {
          continue;
        }
        if (!checkAck.Check(ack)) continue;
        s.lastAckAt = Date.now();
        if (s.status !== ack.status)
          ctx.log.info({ status: ack.status }, `gateway says this machine is ${ack.status}`);
        s.status = ack.status;
        const before = ctx.intervalMs();
        ctx.onInterval(ack.heartbeat_interval_seconds * 1000);
        // A gateway that wants beats more often gets the next one on the new schedule: after the old,
        // longer wait its liveness check (and our own silence check) would take the gap for a failure.
        if (timer !== undefined && !soon && ctx.intervalMs() < before) {
          clearTimeout(timer);
          timer = setTimeout(() => void beat(), ctx.intervalMs());
        }
      }
    });
    const stop = () => {
      closed = true;
      clearTimeout(timer);
      unsubscribe?.();
    };
    res.on("close", stop);
    req.raw.on("close", stop);
    s.lastAckAt = Date.now();
    await beat();
  });
};
