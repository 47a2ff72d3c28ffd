const EMPTY = Buffer.alloc(0);

/**
 * Lines off a socket that may stop being lines: the agent channel's idle form switches to HTTP/2 after
 * one line, and the bytes after that line are HTTP/2's, so they are kept as bytes (`rest()`), never
 * decoded. A line longer than `maxLine` bytes throws.
 */
export class ChannelLineReader {
  #buf: Buffer = EMPTY;
  readonly #maxLine: number;
  constructor(maxLine: number) {
    this.#maxLine = maxLine;
  }

  /** Each whole line so far; stop at any line, and `rest()` holds the bytes after it. */
  *push(chunk: Buffer): Generator<string> {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    for (let nl = this.#buf.indexOf(10); nl !== -1; nl = this.#buf.indexOf(10)) {
      const line = this.#buf.toString("utf8", 0, nl);
      this.#buf = nl + 1 === this.#buf.length ? EMPTY : this.#buf.subarray(nl + 1);
      if (line.trim() !== "") yield line;
    }
    if (this.#buf.length > this.#maxLine) throw new Error(`line longer than ${this.#maxLine} bytes`);
    // A copy: a partial line must not keep the socket's whole read buffer alive while the channel idles.
    if (this.#buf.length > 0) this.#buf = Buffer.from(this.#buf);
  }

  /** The bytes after the last line handed out, and nothing kept. */
  rest(): Buffer {
    const rest = this.#buf;
    this.#buf = EMPTY;
    return rest;
  }
}
