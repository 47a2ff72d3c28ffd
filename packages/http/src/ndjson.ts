/**
 * Split a byte stream into lines, refusing a line longer than `maxLine` bytes (a peer that never
 * sends a newline must not grow our memory).
 */
export class LineSplitter {
  #buf = "";
  readonly #maxLine: number;
  // A character's UTF-8 bytes may be split across two chunks: the decoder keeps the first part.
  readonly #decoder = new TextDecoder();
  constructor(maxLine = 256 * 1024) {
    this.#maxLine = maxLine;
  }

  push(chunk: Buffer | string): string[] {
    this.#buf += typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    const lines = this.#buf.split("\n");
    this.#buf = lines.pop() ?? "";
    if (this.#buf.length > this.#maxLine) throw new Error(`line longer than ${this.#maxLine} bytes`);
    return lines.filter((l) => l.trim() !== "");
  }
}
