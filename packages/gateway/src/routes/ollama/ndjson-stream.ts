import type { EngineChunk, OllamaStats, OllamaToolCall, TokenUsage, ToolCallDelta } from "@beta9/protocol";
import type { FastifyReply } from "fastify";
import { sendNdjson as sendLines } from "../../http/ndjson-reply.ts";
import { sseData } from "../../router/sse.ts";
import { OllamaError, ollamaErrorReply } from "./errors.ts";
import {
  chatDone,
  chatLine,
  doneReason,
  generateDone,
  generateLine,
  metrics,
  type Piece,
} from "./translate.ts";

/*
 * An agent's streamed answer (server-sent events of chat.completion.chunk or text_completion objects)
 * turned into Ollama's answer: NDJSON lines written as they come, with backpressure, or one object.
 */

export interface AnswerOptions {
  kind: "chat" | "generate";
  /** The model name as the client sent it. */
  model: string;
  /** performance.now() when the request arrived and when it went to the machine. */
  startedAt: number;
  sentAt: number;
  /** Clocks, replaceable in tests. */
  now?: () => number;
  clock?: () => string;
}

/** A chunk's choice, as any engine may send it. */
type ChunkChoice = NonNullable<EngineChunk["choices"]>[number];

export type AnswerEvent = { piece: Piece } | { done: { reason: string; stats: OllamaStats } };

/**
 * The answer as pieces (text and reasoning as they come, tool calls at the end) and a last event with
 * done_reason and the statistics. Throws when the answer is cut off or carries an error event.
 */
export async function* answerEvents(
  upstream: AsyncIterable<Buffer>,
  contentType: string,
  o: AnswerOptions,
): AsyncGenerator<AnswerEvent> {
  const now = o.now ?? (() => performance.now());
  let firstTokenAt: number | undefined;
  let finish: string | null | undefined;
  let usage: TokenUsage | undefined;
  let pieces = 0;
  const tools = new Map<number, { name: string; args: string }>();
  const chunks = cutOffAsOllamaError(
    contentType.startsWith("text/event-stream") ? sseChunks(upstream) : jsonChunks(upstream),
  );
  for await (const chunk of chunks) {
    if (chunk.error) throw streamError(chunk.error);
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    const d = choice.delta;
    const content = d?.content ?? choice.text ?? "";
    const thinking = d?.reasoning_content ?? d?.reasoning ?? "";
    for (const [i, tc] of (d?.tool_calls ?? []).entries()) {
      const at = tc.index ?? i;
      const call = tools.get(at) ?? { name: "", args: "" };
      call.name += tc.function?.name ?? "";
      call.args += tc.function?.arguments ?? "";
      tools.set(at, call);
    }
    if (choice.finish_reason) finish = choice.finish_reason;
    if (content !== "" || thinking !== "") {
      firstTokenAt ??= now();
      pieces++;
      yield { piece: { content, thinking } };
    }
  }
  if (tools.size > 0) {
    firstTokenAt ??= now();
    const toolCalls: OllamaToolCall[] = [...tools.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, c]) => ({ function: { name: c.name, arguments: parseArguments(c.args) } }));
    yield { piece: { content: "", thinking: "", toolCalls } };
  }
  const endedAt = now();
  yield {
    done: {
      reason: doneReason(finish),
      stats: metrics({ startedAt: o.startedAt, sentAt: o.sentAt, firstTokenAt, endedAt }, usage, pieces),
    },
  };
}

/** A failure to read the answer (the machine or its channel went away) as an error clients can act on. */
async function* cutOffAsOllamaError<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    if (err instanceof OllamaError) throw err;
    throw new OllamaError(502, "the machine serving this request went away mid-answer; retry it");
  }
}

/** Ollama's tool call arguments are an object; OpenAI's are a JSON string (kept as is if not JSON). */
function parseArguments(args: string): unknown {
  try {
    return args.trim() === "" ? {} : JSON.parse(args);
  } catch {
    return args;
  }
}

async function* sseChunks(body: AsyncIterable<Buffer>): AsyncGenerator<EngineChunk> {
  let ended = false;
  for await (const data of sseData(body)) {
    // Read on to the stream's end after [DONE]: the machine's trailers (its energy) come after it.
    if (ended || data.trim() === "[DONE]") {
      ended = true;
      continue;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new OllamaError(502, "the machine sent an event that is not JSON");
    }
    if (chunk && typeof chunk === "object") yield chunk as EngineChunk;
  }
}

/** An engine that answered with one JSON object instead of a stream: the same, as one chunk. */
async function* jsonChunks(body: AsyncIterable<Buffer>): AsyncGenerator<EngineChunk> {
  const parts: Buffer[] = [];
  for await (const b of body) parts.push(b);
  let answer: {
    choices?: {
      message?: ChunkChoice["delta"] & { tool_calls?: unknown };
      text?: string;
      finish_reason?: string;
    }[];
    usage?: TokenUsage;
    error?: EngineChunk["error"];
  };
  try {
    answer = JSON.parse(Buffer.concat(parts).toString("utf8"));
  } catch {
    throw new OllamaError(502, "the machine's answer is not JSON");
  }
  if (answer.error) throw streamError(answer.error);
  const c = answer.choices?.[0];
  const m = c?.message;
  yield {
    choices: c
      ? [
          {
            delta: m
              ? {
                  content: m.content ?? null,
                  reasoning_content: m.reasoning_content ?? m.reasoning ?? null,
                  tool_calls: Array.isArray(m.tool_calls)
                    ? (m.tool_calls as ToolCallDelta[]).map((t, index) => ({ ...t, index }))
                    : null,
                }
              : null,
            text: c.text ?? null,
            finish_reason: c.finish_reason ?? null,
          },
        ]
      : [],
    usage: answer.usage ?? null,
  };
}

/** An error event in the answer: the engine failed, or the machine went away. */
function streamError(e: NonNullable<EngineChunk["error"]>): OllamaError {
  const err = typeof e === "string" ? { message: e } : e;
  const status = err.code === "unavailable" ? 503 : err.type === "invalid_request_error" ? 400 : 502;
  return new OllamaError(status, err.message ?? "the machine's answer ended with an error");
}

/** The answer as Ollama's NDJSON lines (objects), the last with `done: true`. */
export async function* ollamaLines(
  events: AsyncIterable<AnswerEvent>,
  o: AnswerOptions,
): AsyncGenerator<object> {
  const clock = o.clock ?? (() => new Date().toISOString());
  for await (const e of events) {
    if ("piece" in e) yield (o.kind === "chat" ? chatLine : generateLine)(o.model, clock(), e.piece);
    else yield (o.kind === "chat" ? chatDone : generateDone)(o.model, clock(), e.done.reason, e.done.stats);
  }
}

/** The whole answer as one object, as Ollama answers `"stream": false`. */
export async function collectAnswer(events: AsyncIterable<AnswerEvent>, o: AnswerOptions): Promise<object> {
  const clock = o.clock ?? (() => new Date().toISOString());
  const all: Piece = { content: "", thinking: "", toolCalls: [] };
  for await (const e of events) {
    if ("piece" in e) {
      all.content += e.piece.content;
      all.thinking += e.piece.thinking;
      all.toolCalls!.push(...(e.piece.toolCalls ?? []));
      continue;
    }
    return (o.kind === "chat" ? chatDone : generateDone)(o.model, clock(), e.done.reason, e.done.stats, all);
  }
  throw new OllamaError(502, "the machine's answer ended before it was done");
}

/**
 * Write lines as NDJSON (see http/ndjson-reply.ts); an error after the first line ends the stream with
 * an `{"error":"…"}` line, which Ollama clients raise.
 */
export function sendNdjson(reply: FastifyReply, lines: AsyncIterable<object>): Promise<void> {
  return sendLines(reply, lines, (err) => ollamaErrorReply(err).body);
}
