/** One server-sent event, as the WHATWG HTML spec's event stream parser dispatches it. */
export interface SseEvent {
  /** The `event:` field; "message" when the server named none. */
  event: string;
  /** The `data:` lines, joined with "\n". */
  data: string;
  /** The last `id:` seen, if any. */
  id: string | undefined;
}

/** A line longer than this is refused, so a peer that never ends a line cannot grow our memory. */
export const MAX_SSE_LINE = 8 * 1024 * 1024;

/**
 * Turns the text of an event stream into events, chunk by chunk: lines may end in CRLF, LF or CR
 * (a CR at the end of one chunk and an LF at the start of the next are one line end), comments are
 * skipped, an event is dispatched on a blank line, and one without data is dropped.
 */
export class SseDecoder {
  readonly #maxLine: number;
  #buffer = "";
  /** The last chunk ended in CR: an LF starting the next one belongs to that line end. */
  #skipLf = false;
  #data: string[] = [];
  #event = "";
  #id: string | undefined;

  constructor(maxLine = MAX_SSE_LINE) {
    this.#maxLine = maxLine;
  }

  /** Feeds decoded text; returns the events it completed. */
  push(text: string): SseEvent[] {
    let chunk = text;
    if (this.#skipLf && chunk.startsWith("\n")) chunk = chunk.slice(1);
    if (chunk !== "") this.#skipLf = false;
    this.#buffer += chunk;
    const events: SseEvent[] = [];
    let start = 0;
    const lineEnd = /[\r\n]/g;
    for (let m = lineEnd.exec(this.#buffer); m; m = lineEnd.exec(this.#buffer)) {
      const end = m.index;
      let next = end + 1;
      if (this.#buffer[end] === "\r") {
        if (next === this.#buffer.length) this.#skipLf = true;
        else if (this.#buffer[next] === "\n") next++;
      }
      this.#line(this.#buffer.slice(start, end), events);
      start = next;
      lineEnd.lastIndex = next;
    }
    this.#buffer = this.#buffer.slice(start);
    if (this.#buffer.length > this.#maxLine) {
      throw new RangeError(`an event stream line is longer than ${this.#maxLine} characters`);
    }
    return events;
  }

  /** The stream ended. An event not closed by a blank line is incomplete and dropped, as the spec says. */
  end(): SseEvent[] {
    this.#buffer = "";
    this.#data = [];
    this.#event = "";
    return [];
  }

  #line(line: string, events: SseEvent[]): void {
    if (line === "") {
      if (this.#data.length > 0) {
        events.push({ event: this.#event || "message", data: this.#data.join("\n"), id: this.#id });
      }
      this.#data = [];
      this.#event = "";
      return;
    }
    if (line.startsWith(":")) return; // a comment, often a keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.#id = value;
    // "retry" and unknown fields change nothing a client of a finite answer needs.
  }
}

/** The events of a byte stream (a fetch Response body), in order; UTF-8 split across chunks is fine. */
export async function* sseEvents(
  body: AsyncIterable<Uint8Array>,
  maxLine = MAX_SSE_LINE,
): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder(); // drops a leading byte order mark, as the spec asks
  const sse = new SseDecoder(maxLine);
  for await (const bytes of body) yield* sse.push(decoder.decode(bytes, { stream: true }));
  yield* sse.push(decoder.decode());
  yield* sse.end();
}
