import { StringDecoder } from "node:string_decoder";

/** What one event keeps of a prompt or an answer at most: enough to read, bounded per request. */
export const CONTENT_CAP_CHARS = 64 * 1024;

/** The prompt and the answer of one request, as its audit event keeps them. */
export interface CapturedContent {
  /** The request as sent to the machine (OpenAI's shape, whichever API it came by), as JSON text. */
  request: string;
  /** The answer's text (a stream's pieces joined; a whole answer's body). */
  answer: string;
  /** Either was longer than CONTENT_CAP_CHARS and is cut there. */
  truncated: boolean;
}

/** Gathers one request's prompt and answer for its audit event, each cut at CONTENT_CAP_CHARS. */
export class ContentCapture {
  readonly #request: string;
  #answer = "";
  #truncated: boolean;
  #decoder: StringDecoder | undefined;

  constructor(body: unknown) {
    const text = JSON.stringify(body) ?? "";
    this.#truncated = text.length > CONTENT_CAP_CHARS;
    this.#request = text.slice(0, CONTENT_CAP_CHARS);
  }

  /** A piece of the answer's text. */
  text(piece: string): void {
    if (this.#answer.length >= CONTENT_CAP_CHARS) {
      if (piece.length > 0) this.#truncated = true;
      return;
    }
    const room = CONTENT_CAP_CHARS - this.#answer.length;
    if (piece.length > room) this.#truncated = true;
    this.#answer += piece.slice(0, room);
  }

  /** Bytes of a whole answer as they come (a character split across chunks is joined). */
  bytes(chunk: Buffer): void {
    this.#decoder ??= new StringDecoder("utf8");
    this.text(this.#decoder.write(chunk));
  }

  /** One event of an OpenAI stream: its choices' text (chat deltas or completions' text). */
  event(data: string): void {
    let v: unknown;
    try {
      v = JSON.parse(data);
    } catch {
      return;
    }
    const choices = (v as { choices?: unknown } | null)?.choices;
    if (!Array.isArray(choices)) return;
    for (const c of choices as { delta?: { content?: unknown }; text?: unknown }[]) {
      const t = c?.delta?.content ?? c?.text;
      if (typeof t === "string") this.text(t);
    }
  }

  /** What the event keeps. */
  get content(): CapturedContent {
    return { request: this.#request, answer: this.#answer, truncated: this.#truncated };
  }
}
