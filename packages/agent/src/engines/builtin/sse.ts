import type { ServerResponse } from "node:http";

/** Past this much unsent data the client is not reading; the stream gives up on it. */
const MAX_BUFFERED = 1024 * 1024;

/**
 * Server-sent events on a raw response (the caller has hijacked the reply). Each event is written as
 * soon as it is made. When the socket pushes back (write() returns false), events are held and
 * coalesced into one write on 'drain'; a client that stops reading altogether gets `onStall` once the
 * held data passes 1 MiB, so the generation behind it can stop.
 */
export class SseStream {
  readonly #res: ServerResponse;
  readonly #onStall: () => void;
  readonly #maxBuffered: number;
  #held: string[] = [];
  #heldBytes = 0;
  #blocked = false;
  #stalled = false;

  constructor(res: ServerResponse, opts: { onStall: () => void; maxBuffered?: number }) {
    this.#res = res;
    this.#onStall = opts.onStall;
    this.#maxBuffered = opts.maxBuffered ?? MAX_BUFFERED;
  }

  open(): void {
    this.#res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    });
    this.#res.flushHeaders();
  }

  get closed(): boolean {
    return this.#res.destroyed || this.#res.writableEnded;
  }

  send(data: unknown): void {
    this.#write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
  }

  /** Write `[DONE]`, flush what is held, and end the response. */
  async end(): Promise<void> {
    this.send("[DONE]");
    while (this.#blocked && !this.closed) await this.#drained();
    if (!this.closed) this.#res.end();
  }

  #write(event: string): void {
    if (this.closed || this.#stalled) return;
    if (this.#blocked) {
      this.#held.push(event);
      this.#heldBytes += Buffer.byteLength(event);
      if (this.#heldBytes > this.#maxBuffered) {
        this.#stalled = true;
        this.#onStall();
      }
      return;
    }
    if (!this.#res.write(event)) {
      this.#blocked = true;
      this.#res.once("drain", this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#blocked = false;
    const held = this.#held.join("");
    this.#held = [];
    this.#heldBytes = 0;
    if (held !== "") this.#write(held);
  };

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#res.off("drain", done);
        this.#res.off("close", done);
        // Run after #flush (registered first), so a still-full socket is seen as blocked again.
        setImmediate(resolve);
      };
      this.#res.on("drain", done);
      this.#res.on("close", done);
    });
  }
}
