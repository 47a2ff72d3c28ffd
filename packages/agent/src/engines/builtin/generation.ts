import type { CompletionUsage, FinishReason } from "@beta9/protocol";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { LlamaContextSequence } from "node-llama-cpp";
import { ClientGoneError, clientAbortSignal } from "./client-abort.ts";
import { EngineError, toOpenAIError } from "./errors.ts";
import type { LoadedModel } from "./loaded-model.ts";
import { finishReason, type StopReason } from "./sampling.ts";
import { SseStream } from "./sse.ts";

/** What a generation reports while it runs. */
export interface GenerationIO {
  signal: AbortSignal;
  /** Decoded text of the answer, piece by piece. */
  onText(text: string): void;
  /** Decoded reasoning ("thought" segments of models that think), piece by piece. */
  onReasoning(text: string): void;
  /** Tokens sampled, answer and reasoning alike. */
  onTokens(count: number): void;
}

export interface GenerationResult {
  text: string;
  reasoning: string;
  stopReason: StopReason;
}

/** How one API (chat or text completions) dresses a generation on the wire. */
export interface WireFormat<Complete> {
  /** Events sent before any text (chat sends the role). */
  opening(): unknown[];
  delta(text: string, kind: "content" | "reasoning"): unknown;
  closing(finish: FinishReason): unknown;
  usageChunk(usage: CompletionUsage): unknown;
  complete(result: GenerationResult, finish: FinishReason, usage: CompletionUsage): Complete;
}

export interface GenerationRequest<Complete> {
  model: LoadedModel;
  stream: boolean;
  includeUsage: boolean;
  promptTokens: number;
  wire: WireFormat<Complete>;
  run(sequence: LlamaContextSequence, io: GenerationIO): Promise<GenerationResult>;
}

/**
 * Wait for a sequence, run the generation on it, and answer as one JSON object or as server-sent
 * events. Errors before the first byte are ordinary JSON errors (503 when the line is full); the SSE
 * headers are written only once a sequence is ours. A client that leaves stops the generation.
 */
export async function serveGeneration<Complete>(
  req: FastifyRequest,
  reply: FastifyReply,
  g: GenerationRequest<Complete>,
): Promise<Complete | undefined> {
  const client = clientAbortSignal(reply);
  const started = performance.now();
  let sse: SseStream | undefined;
  let completionTokens = 0;
  const io = (signal: AbortSignal): GenerationIO => ({
    signal,
    onText: (text) => {
      if (sse && text !== "") sse.send(g.wire.delta(text, "content"));
    },
    onReasoning: (text) => {
      if (sse && text !== "") sse.send(g.wire.delta(text, "reasoning"));
    },
    onTokens: (count) => {
      completionTokens += count;
      g.model.stats.tokensGenerated += count;
    },
  });

  let result: GenerationResult | undefined;
  let failure: unknown;
  try {
    result = await g.model.withSequence(client.signal, async (sequence, signal) => {
      if (g.stream) {
        reply.hijack();
        sse = new SseStream(reply.raw, {
          onStall: () => client.abort(new ClientGoneError("the client stopped reading")),
        });
        sse.open();
        for (const event of g.wire.opening()) sse.send(event);
      }
      return g.run(sequence, io(signal));
    });
  } catch (err) {
    failure = err;
  }

  const log = { model: g.model.name, prompt_tokens: g.promptTokens, completion_tokens: completionTokens };
  if (client.signal.aborted) {
    g.model.stats.cancelled++;
    req.log.info(
      { ...log, reason: (client.signal.reason as Error).message },
      "generation stopped: client went away",
    );
    if (!reply.sent) reply.hijack();
    if (!reply.raw.destroyed) reply.raw.destroy();
    return undefined;
  }
  if (failure !== undefined || !result || result.stopReason === "abort") {
    // No client abort, so an aborted generation means the model was unloaded (or the engine is stopping).
    const err =
      failure ??
      new EngineError(503, "unavailable", `the model ${g.model.name} was unloaded during the generation`);
    if (!sse) throw err;
    const { status, body } = toOpenAIError(err);
    if (status >= 500 && status !== 503) req.log.error({ err, ...log }, "generation failed");
    sse.send(body);
    await sse.end();
    return undefined;
  }

  const finish = finishReason(result.stopReason);
  const usage: CompletionUsage = {
    prompt_tokens: g.promptTokens,
    completion_tokens: completionTokens,
    total_tokens: g.promptTokens + completionTokens,
  };
  const ms = performance.now() - started;
  req.log.debug(
    {
      ...log,
      finish_reason: finish,
      ms: Math.round(ms),
      tokens_per_s: round1((completionTokens * 1000) / ms),
    },
    "generation finished",
  );
  if (!sse) return g.wire.complete(result, finish, usage);
  sse.send(g.wire.closing(finish));
  if (g.includeUsage) sse.send(g.wire.usageChunk(usage));
  await sse.end();
  return undefined;
}

const round1 = (n: number) => Math.round(n * 10) / 10;
