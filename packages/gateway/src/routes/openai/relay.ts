import type { ServerResponse } from "node:http";
import type { TokenUsage } from "@beta9/protocol";
import { drained, tapFirst } from "../../http/client-gone.ts";
import { inspectEvent, JsonUsageTap } from "../../metering/answer-usage.ts";
import { CLIENT_LEFT, CUT_OFF, type RequestMeter } from "../../metering/metering.ts";
import type { AgentResponse } from "../../router/request.ts";
import { sseData } from "../../router/sse.ts";

/** The event that ends a stream whose machine went away mid-answer; openai clients raise it. */
const WORKER_LOST = `data: ${JSON.stringify({ error: { message: "the machine serving this request went away; retry it", type: "server_error", code: "worker_lost" } })}\n\n`;

export interface RelayOptions {
  meter: RequestMeter;
  onFirstByte: () => void;
  signal: AbortSignal;
}

/**
 * A streamed answer, event by event: each event the machine sends is written as it comes (a slow
 * client pauses the reading, and so the machine), except the usage-only chunk when the client did not
 * ask for it. The usage is metered either way. An answer cut off mid-way ends with an error event.
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
  try {
    for await (const data of sseData(tapFirst(res.body, o.onFirstByte))) {
      const event = inspectEvent(data);
      if (event.usage) usage = event.usage;
      if (event.kind === "chunk") chunks++;
      if (event.kind === "error") status = CUT_OFF;
      if (event.kind === "usage" && !o.clientWantsUsage) continue;
      if (data.trim() === "[DONE]") {
        done = `data: ${data}\n\n`;
        continue;
      }
      if (!raw.write(`data: ${data}\n\n`)) await drained(raw);
      if (raw.destroyed) break;
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
  // Written before the client sees the end: a usage query right after it counts this request, and a
  // gateway killed after that has lost nothing.
  o.meter.finish(cutOff ? CUT_OFF : status);
  await o.meter.written();
  if (!raw.destroyed) raw.end(cutOff ? WORKER_LOST : done);
}

/** Any other answer, byte for byte (a JSON answer's `usage` is read on the way). */
export async function relayBytes(raw: ServerResponse, res: AgentResponse, o: RelayOptions): Promise<void> {
  const tap = new JsonUsageTap();
  let failure: Error | undefined;
  // The last chunk waits for the usage row to be written (see relayEvents); each one before it goes
  // out as the next arrives.
  let held: Buffer | undefined;
  try {
    for await (const chunk of tapFirst(res.body, o.onFirstByte)) {
      tap.push(chunk);
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
  o.meter.finish(res.status);
  await o.meter.written();
  if (!raw.destroyed) raw.end(held);
}
