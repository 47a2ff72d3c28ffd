const EMPTY = Buffer.alloc(0);

/**
 * Lines off a socket that may stop being lines: the agent channel's idle form switches to HTTP/2 after
 * one line, and the bytes after that line are HTTP/2's, so they are kept as bytes (`rest()`), never
 * decoded. A line longer than `maxLine` bytes throws.
 *
 * It runs for every heartbeat of every agent (2,000 a second at 10,000 agents), so it allocates
 * nothing but each line's string: no generator, no slice of the chunk per line (bench/heartbeats).
 */
export class ChannelLineReader {
  #buf: Buffer = EMPTY;
  readonly #maxLine: number;
  constructor(maxLine: number) {
    this.#maxLine = maxLine;
  }

  /**
   * Hands each whole line so far to `onLine`, blank lines left out. When `onLine` returns false the
   * lines stop there: nothing after that line is read, and `rest()` holds its bytes.
   */
  push(chunk: Buffer, onLine: (line: string) => boolean): void {
    const buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let start = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, start)) {
      const line = buf.toString("utf8", start, nl);
      start = nl + 1;
      if (line.trim() !== "" && !onLine(line)) {
        this.#buf = start === buf.length ? EMPTY : buf.subarray(start);
        return;
      }
    }
    const left = buf.length - start;
    if (left > this.#maxLine) {
      this.#buf = EMPTY;
      throw new Error(`line longer than ${this.#maxLine} bytes`);
    }
    // A copy: a partial line must not keep the socket's whole read buffer alive while the channel idles.
    this.#buf = left === 0 ? EMPTY : Buffer.from(buf.subarray(start));
  }

  /** The bytes after the last line handed out, and nothing kept. */
  rest(): Buffer {
    const rest = this.#buf;
    this.#buf = EMPTY;
    return rest;
  }
}
