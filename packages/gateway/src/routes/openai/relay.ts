import type { ServerResponse } from "node:http";
import type { TokenUsage } from "@beta9/protocol";
import {
  FOOTPRINT_HEADERS,
  type Footprint,
  footprintField,
  footprintHeaders,
} from "../../carbon/footprint.ts";
import { drained, tapFirst } from "../../http/client-gone.ts";
import { inspectEvent, JsonUsageTap } from "../../metering/answer-usage.ts";
import { CLIENT_LEFT, CUT_OFF, type RequestMeter } from "../../metering/metering.ts";
import type { AgentResponse } from "../../router/request.ts";
import { SseSplitter } from "../../router/sse.ts";

/** The event that ends a stream whose machine went away mid-answer; openai clients raise it. */
const WORKER_LOST = `data: ${JSON.stringify({ error: { message: "the machine serving this request went away; retry it", type: "server_error", code: "worker_lost" } })}\n\n`;

export interface RelayOptions {
  meter: RequestMeter;
  onFirstByte: () => void;
  signal: AbortSignal;
}

/** A whole answer is held up to this size so that its footprint can ride in its headers. */
const WHOLE_ANSWER_BYTES = 1024 * 1024;

/** Declared on answers whose footprint comes after the body (streams): HTTP trailers. */
export const FOOTPRINT_TRAILER = FOOTPRINT_HEADERS.join(", ");

/**
 * A streamed answer, event by event: each event the machine sends is written as it comes (a slow
 * client pauses the reading, and so the machine), except the usage-only chunk when the client did not
 * ask for it. The usage is metered either way. An answer cut off mid-way ends with an error event.
 * The answer's footprint (known once the machine's answer has ended, from its trailers) goes in the
 * usage chunk as a `beta9` field, held back until then, and in the HTTP trailers.
 */
export async function relayEvents(
  raw: ServerResponse,
  res: AgentResponse,
  o: RelayOptions & { clientWantsUsage: boolean },
): Promise<void> {
  let usage: TokenUsage | undefined;
  let chunks = 0;
  let status = res.status;
  let cutOff = false;
  // After [DONE] the answer is whole for the client; openai clients may close the connection at once.
  // So [DONE] is held back until the usage row is written.
  let done: string | undefined;
  // The usage chunk the client asked for, held until the footprint is known (it comes last but [DONE]).
  let usageEvent: string | undefined;
  // Per chunk from the machine, not per event: the events a chunk completes are told apart
  // synchronously and what passes goes out in one write (no promise or generator per event).
  const splitter = new SseSplitter();
  const events: string[] = [];
  let first = true;
  /** The events in `events` that pass to the client, as one string; the rest are noted. */
  const take = (): string => {
    let pass = "";
    for (const data of events) {
      const event = inspectEvent(data);
      if (event.usage) usage = event.usage;
      if (event.kind === "chunk") {
        chunks++;
        o.meter.capture?.event(data);
      }
      if (event.kind === "error") status = CUT_OFF;
      if (event.kind === "usage") {
        if (o.clientWantsUsage) usageEvent = data;
        continue;
      }
      if (event.kind === "done") {
        done = `data: ${data}\n\n`;
        continue;
      }
      pass += `data: ${data}\n\n`;
    }
    events.length = 0;
    return pass;
  };
  try {
    for await (const chunk of res.body) {
      if (first) {
        first = false;
        o.onFirstByte();
      }
      let failure: unknown;
      try {
        splitter.push(chunk, events);
      } catch (err) {
        failure = err;
      }
      const pass = take();
      // Waited on only while the client's socket is full: no promise per chunk otherwise.
      if (pass && !raw.write(pass)) await drained(raw);
      if (failure !== undefined) throw failure;
      if (raw.destroyed) break;
    }
    if (!raw.destroyed) {
      splitter.end(events);
      const pass = take();
      if (pass) raw.write(pass);
    }
  } catch {
    cutOff = !done;
  } finally {
    res.cancel();
  }
  // Without a usage chunk (cut off, or an engine that sends none), one chunk is about one token.
  o.meter.tokens(usage?.prompt_tokens, usage?.completion_tokens ?? chunks);
  if (!done && (o.signal.aborted || raw.destroyed)) {
    o.meter.finish(CLIENT_LEFT);
    return;
  }
  const footprint = cutOff ? undefined : await o.meter.measure(res.trailers?.());
  // Written before the client sees the end: a usage query right after it counts this request, and a
  // gateway killed after that has lost nothing.
  o.meter.finish(cutOff ? CUT_OFF : status);
  await o.meter.written();
  if (raw.destroyed) return;
  if (usageEvent !== undefined) raw.write(`data: ${withFootprint(usageEvent, footprint)}\n\n`);
  if (footprint) raw.addTrailers(footprintHeaders(footprint));
  raw.end(cutOff ? WORKER_LOST : done);
}

/** The usage chunk with the answer's footprint as its `beta9` field (openai clients keep unknown fields). */
function withFootprint(data: string, f: Footprint | undefined): string {
  if (!f) return data;
  try {
    return JSON.stringify({ ...(JSON.parse(data) as object), beta9: footprintField(f) });
  } catch {
    return data;
  }
}

/**
 * Any other answer, byte for byte (a JSON answer's `usage` is read on the way). Its status and headers
 * (`head`) are written with its first bytes: an answer up to 1 MiB is held whole, so its footprint
 * rides in its headers; a longer one (embeddings) streams, its footprint then in HTTP trailers.
 */
export async function relayBytes(
  raw: ServerResponse,
  res: AgentResponse,
  o: RelayOptions & {
    /** The answer's status and headers, written here; absent when the caller wrote them already. */
    head?: { status: number; headers: Record<string, string | string[]> } | undefined;
  },
): Promise<void> {
  const tap = new JsonUsageTap();
  let failure: Error | undefined;
  // Until WHOLE_ANSWER_BYTES, everything is held; past it, the last chunk only waits for the usage row
  // to be written (see relayEvents), each one before it going out as the next arrives.
  const whole: Buffer[] = [];
  let wholeBytes = 0;
  let streaming = o.head === undefined;
  let held: Buffer | undefined;
  try {
    for await (const chunk of tapFirst(res.body, o.onFirstByte)) {
      tap.push(chunk);
      o.meter.capture?.bytes(chunk);
      if (!streaming) {
        whole.push(chunk);
        wholeBytes += chunk.length;
        if (wholeBytes <= WHOLE_ANSWER_BYTES) continue;
        streaming = true;
        if (o.head) raw.writeHead(o.head.status, { ...o.head.headers, trailer: FOOTPRINT_TRAILER });
        held = whole.pop();
        for (const b of whole.splice(0)) if (!raw.write(b)) await drained(raw);
        continue;
      }
      if (held && !raw.write(held)) await drained(raw);
      held = chunk;
      if (raw.destroyed) break;
    }
  } catch (err) {
    failure = err as Error;
  } finally {
    res.cancel();
  }
  if (o.signal.aborted || raw.destroyed) {
    o.meter.finish(CLIENT_LEFT);
    return;
  }
  if (failure) {
    // Cut off: the client sees a broken response rather than a short one that parses.
    o.meter.finish(CUT_OFF);
    raw.destroy(failure);
    return;
  }
  // A refusal by the engine used nothing; an answer, what its usage says.
  const usage = res.status === 200 ? tap.usage() : { prompt_tokens: 0, completion_tokens: 0 };
  o.meter.tokens(usage?.prompt_tokens, usage?.completion_tokens);
  const footprint = await o.meter.measure(res.trailers?.());
  o.meter.finish(res.status);
  await o.meter.written();
  if (raw.destroyed) return;
  const feet = footprint ? footprintHeaders(footprint) : {};
  if (streaming) {
    raw.addTrailers(feet);
    raw.end(held);
    return;
  }
  if (o.head) raw.writeHead(o.head.status, { ...o.head.headers, ...feet });
  raw.end(Buffer.concat(whole));
}
