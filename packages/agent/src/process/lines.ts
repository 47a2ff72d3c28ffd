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
  #partial = "";

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  push(chunk: Buffer | string): void {
    const text = this.#partial + (typeof chunk === "string" ? chunk : chunk.toString("utf8"));
    const parts = text.split(/\r\n|\n|\r/);
    this.#partial = parts.pop() ?? "";
    for (const part of parts) this.#emit(part);
    if (this.#partial.length > MAX_LINE_CHARS) {
      this.#emit(this.#partial);
      this.#partial = "";
    }
  }

  /** Passes on what is left after the stream ended without a final newline. */
  end(): void {
    if (this.#partial !== "") this.#emit(this.#partial);
    this.#partial = "";
  }

  #emit(line: string): void {
    if (line.trim() === "") return;
    this.#onLine(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
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
