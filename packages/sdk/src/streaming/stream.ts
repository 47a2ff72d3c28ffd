import { ConnectionLostError, describeNetworkFailure } from "../errors.ts";

/** Opens the HTTP request behind a stream; `signal` aborts it (and closes its connection). */
export type Opener = (signal: AbortSignal) => Promise<Response>;

/** Turns a successful response's body into the stream's items. */
export type Decoder<T> = (body: AsyncIterable<Uint8Array>) => AsyncIterable<T>;

/**
 * A streamed answer as an async iterator, read once. The request is sent when reading begins.
 *
 * Stopping it closes the HTTP request, so the gateway stops the work behind it (a generation, a
 * pull): call `abort()` (reading then ends quietly), leave a `for await` loop early, or abort the
 * `signal` given to the call (reading then rejects with the signal's reason, as every SDK call does).
 */
export class Stream<T> implements AsyncIterable<T> {
  readonly #open: Opener;
  readonly #decode: Decoder<T>;
  readonly #baseUrl: string;
  readonly #controller = new AbortController();
  readonly #callerSignal: AbortSignal | undefined;
  /** Aborted by `abort()` or by the caller's signal: either closes the request. */
  readonly #signal: AbortSignal;
  #started = false;
  #ended = false;
  #abortCalled = false;

  constructor(
    open: Opener,
    decode: Decoder<T>,
    options: { baseUrl: string; signal?: AbortSignal | undefined },
  ) {
    this.#open = open;
    this.#decode = decode;
    this.#baseUrl = options.baseUrl;
    this.#callerSignal = options.signal;
    this.#signal = options.signal
      ? AbortSignal.any([options.signal, this.#controller.signal])
      : this.#controller.signal;
  }

  /** True once `abort()` was called. */
  get aborted(): boolean {
    return this.#abortCalled;
  }

  /** True once the answer was read to its end. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Stops reading and closes the request; a `for await` over the stream then ends without an error. */
  abort(): void {
    this.#abortCalled = true;
    this.#controller.abort();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    if (this.#started) throw new TypeError("a stream can be read only once");
    this.#started = true;
    const stopped = this.#controller.signal;
    let body: ReadableStream<Uint8Array> | null = null;
    try {
      if (stopped.aborted) return;
      this.#callerSignal?.throwIfAborted();
      const response = await this.#open(this.#signal);
      body = response.body;
      if (!body) {
        this.#ended = true;
        return;
      }
      for await (const item of this.#decode(this.#read(body))) {
        yield item;
        if (stopped.aborted) return;
      }
      this.#ended = true;
    } catch (error) {
      if (stopped.aborted) return; // our own abort() is a way to stop, not a failure
      if (this.#callerSignal?.aborted) throw this.#callerSignal.reason;
      throw error;
    } finally {
      // Left early (break, abort, an error): close the connection so the server stops working for us.
      if (!this.#ended && !stopped.aborted) this.#controller.abort();
      if (body && !this.#ended) await body.cancel().catch(() => {});
    }
  }

  /** The body's bytes; a connection that drops mid-answer becomes a ConnectionLostError. */
  async *#read(body: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
    const reader = body.getReader();
    try {
      for (;;) {
        const chunk = await reader.read().catch((error: unknown) => {
          if (this.#signal.aborted) throw error;
          throw new ConnectionLostError(this.#baseUrl, describeNetworkFailure(error), { cause: error });
        });
        if (chunk.done) return;
        yield chunk.value;
      }
    } finally {
      reader.releaseLock();
    }
  }
}
