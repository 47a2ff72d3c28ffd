/**
 * Child processes (engines, jobs) write progress bars with carriage returns and can print megabytes
 * of logs; the agent passes their output on line by line and keeps only the last few lines, enough
 * to say why a process died.
 */

/** Longest line passed on; a progress bar redrawn without newlines must not grow without bound. */
export const MAX_LINE_CHARS = 4096;

/** Splits a byte stream into lines on \n, \r\n or a lone \r (progress bars redraw with \r). */
export class LineSplitter {
  readonly #onLine: (line: string) => void;
  /** Set: a longer line is passed on once, cut, saying how much was cut (jobs' logs); else in pieces. */
  readonly #cutAt: number | undefined;
  #partial = "";
  /** The head of an over-long line whose end has not come yet, and how many characters were cut. */
  #cutHead: string | undefined;
  #cutChars = 0;

  constructor(onLine: (line: string) => void, options: { cutLinesAt?: number | undefined } = {}) {
    this.#onLine = onLine;
    this.#cutAt = options.cutLinesAt;
  }

  push(chunk: Buffer | string): void {
    let text = typeof chunk === "string" ? chunk : chunk.toString("utf8");
    if (this.#cutHead !== undefined) {
      // Inside an over-long line: count what comes until its end, keep none of it.
      const end = text.search(/\r|\n/);
      if (end < 0) {
        this.#cutChars += text.length;
        return;
      }
      this.#cutChars += end;
      this.#emitCut();
      text = text.slice(end);
    }
    text = this.#partial + text;
    const parts = text.split(/\r\n|\n|\r/);
    this.#partial = parts.pop() ?? "";
    for (const part of parts) this.#emit(part);
    if (this.#cutAt !== undefined && this.#partial.length > this.#cutAt) {
      this.#cutHead = this.#partial.slice(0, this.#cutAt);
      this.#cutChars = this.#partial.length - this.#cutAt;
      this.#partial = "";
    } else if (this.#cutAt === undefined && this.#partial.length > MAX_LINE_CHARS) {
      this.#emit(this.#partial);
      this.#partial = "";
    }
  }

  /** Passes on what is left after the stream ended without a final newline. */
  end(): void {
    if (this.#cutHead !== undefined) this.#emitCut();
    if (this.#partial !== "") this.#emit(this.#partial);
    this.#partial = "";
  }

  #emitCut(): void {
    this.#onLine(`${this.#cutHead ?? ""}… [line cut: ${this.#cutChars} more characters dropped]`);
    this.#cutHead = undefined;
    this.#cutChars = 0;
  }

  #emit(line: string): void {
    if (line.trim() === "") return;
    const max = this.#cutAt ?? MAX_LINE_CHARS;
    if (line.length <= max) this.#onLine(line);
    else if (this.#cutAt !== undefined)
      this.#onLine(`${line.slice(0, max)}… [line cut: ${line.length - max} more characters dropped]`);
    else this.#onLine(`${line.slice(0, max)}…`);
  }
}

/** The last lines of a stream, bounded both in lines and in bytes. */
export class OutputTail {
  readonly #maxLines: number;
  readonly #maxBytes: number;
  readonly #lines: string[] = [];
  #bytes = 0;

  constructor(options: { maxLines?: number; maxBytes?: number } = {}) {
    this.#maxLines = options.maxLines ?? 40;
    this.#maxBytes = options.maxBytes ?? 8 * 1024;
  }

  push(line: string): void {
    this.#lines.push(line);
    this.#bytes += Buffer.byteLength(line) + 1;
    while (this.#lines.length > 1 && (this.#lines.length > this.#maxLines || this.#bytes > this.#maxBytes)) {
      const dropped = this.#lines.shift() ?? "";
      this.#bytes -= Buffer.byteLength(dropped) + 1;
    }
  }

  lines(): string[] {
    return [...this.#lines];
  }

  text(): string {
    return this.#lines.join("\n");
  }

  clear(): void {
    this.#lines.length = 0;
    this.#bytes = 0;
  }
}
