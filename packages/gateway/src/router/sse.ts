/**
 * The `data` of each server-sent event in a byte stream, chunk by chunk and synchronously: push() adds
 * the data of every event a chunk completes to `out` (an event's several data lines are joined with
 * "\n", as the SSE spec says). Comments and other fields are skipped. A line longer than `maxLine`
 * bytes is refused (push throws after adding the events before it), so a peer that never ends a line
 * cannot grow our memory. No promise or generator per event: it runs for every token of every stream.
 */
export class SseSplitter {
  readonly #decoder = new TextDecoder();
  readonly #maxLine: number;
  #buf = "";
  // The data lines of the event being read (most events have one).
  #data: string | undefined;
  #more: string[] | undefined;

  constructor(maxLine = 4 * 1024 * 1024) {
    this.#maxLine = maxLine;
  }

  push(chunk: Uint8Array, out: string[]): void {
    const buf = this.#buf + this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n", start)) {
      const end = nl > start && buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      if (end === start) {
        if (this.#data !== undefined) out.push(this.#event());
      } else this.#take(buf, start, end);
      start = nl + 1;
    }
    this.#buf = start > 0 ? buf.slice(start) : buf;
    if (this.#buf.length > this.#maxLine)
      throw new Error(`an event line is longer than ${this.#maxLine} bytes`);
  }

  /** The end of the stream: what is left (a last event without its blank line) goes to `out`. */
  end(out: string[]): void {
    const buf = this.#buf + this.#decoder.decode();
    this.#buf = "";
    for (const line of buf.split("\n")) {
      const end = line.endsWith("\r") ? line.length - 1 : line.length;
      if (end === 0) {
        if (this.#data !== undefined) out.push(this.#event());
      } else this.#take(line, 0, end);
    }
    if (this.#data !== undefined) out.push(this.#event());
  }

  #take(line: string, from: number, to: number): void {
    if (!line.startsWith("data:", from)) return;
    const value = line.slice(from + (line.charCodeAt(from + 5) === 32 ? 6 : 5), to);
    if (this.#data === undefined) this.#data = value;
    else if (this.#more) this.#more.push(value);
    else this.#more = [this.#data, value];
  }

  #event(): string {
    const d = this.#more ? this.#more.join("\n") : this.#data!;
    this.#data = undefined;
    this.#more = undefined;
    return d;
  }
}

/** The `data` of each server-sent event in a byte stream, in order (see SseSplitter). */
export async function* sseData(
  body: AsyncIterable<Buffer>,
  maxLine = 4 * 1024 * 1024,
): AsyncGenerator<string> {
  const splitter = new SseSplitter(maxLine);
  const out: string[] = [];
  for await (const chunk of body) {
    let failure: unknown;
    try {
      splitter.push(chunk, out);
    } catch (err) {
      failure = err;
    }
    for (const d of out) yield d;
    out.length = 0;
    if (failure !== undefined) throw failure;
  }
  splitter.end(out);
  for (const d of out) yield d;
}
