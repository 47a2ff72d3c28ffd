import { errorOf, StreamError } from "../errors.ts";
import { sseEvents } from "../streaming/sse.ts";
import { type Opener, Stream } from "../streaming/stream.ts";
import { chunkOf } from "./openai-wire.ts";
import type { Completion, CompletionChunk, Usage } from "./types.ts";

/**
 * A streamed `chat` or `generate` answer: an async iterator of chunks that also keeps the whole answer
 * so far. Stop it with `abort()` or by leaving the loop; the gateway then stops generating.
 *
 * ```ts
 * const stream = b9.inference.chatStream({ model, messages });
 * for await (const chunk of stream) process.stdout.write(chunk.content);
 * console.log(stream.result().usage);
 * ```
 */
export class CompletionStream extends Stream<CompletionChunk> {
  #content = "";
  #model = "";
  #finishReason: string | null = null;
  #usage: Usage | null = null;

  constructor(open: Opener, options: { baseUrl: string; signal?: AbortSignal | undefined }) {
    super(open, openAiEvents, options);
  }

  override async *[Symbol.asyncIterator](): AsyncGenerator<CompletionChunk, void, undefined> {
    for await (const chunk of super[Symbol.asyncIterator]()) {
      this.#content += chunk.content;
      if (chunk.model) this.#model = chunk.model;
      if (chunk.finishReason) this.#finishReason = chunk.finishReason;
      if (chunk.usage) this.#usage = chunk.usage;
      yield chunk;
    }
  }

  /** The answer as read so far; once the stream has ended, the whole answer. */
  result(): Completion {
    return {
      content: this.#content,
      model: this.#model,
      finishReason: this.#finishReason,
      usage: this.#usage,
      raw: null,
    };
  }

  /** Reads the stream to its end (it must not have been started) and returns the whole answer. */
  async finalResult(): Promise<Completion> {
    for await (const _ of this) {
      // each chunk is kept by the iterator
    }
    return this.result();
  }
}

/** The chunks of an OpenAI event stream up to `[DONE]`; an error event is thrown as a StreamError. */
async function* openAiEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<CompletionChunk> {
  for await (const event of sseEvents(body)) {
    const data = event.data.trim();
    if (data === "[DONE]") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      throw new StreamError(
        200,
        "invalid_response",
        `the stream sent an event that is not JSON: ${data.slice(0, 80)}`,
      );
    }
    const error = errorOf(parsed);
    if (error) throw new StreamError(200, error.code || "internal", error.message);
    yield chunkOf(parsed);
  }
  // A connection closed cleanly mid-answer (a proxy, a restart) must not pass for a whole answer.
  throw new StreamError(
    200,
    "stream_incomplete",
    "the answer stream ended before its end marker; the answer may be cut short, so retry it",
  );
}
