/** A line longer than this is refused, so a peer that never ends a line cannot grow our memory. */
export const MAX_NDJSON_LINE = 8 * 1024 * 1024;

/**
 * The non-blank lines of a newline-delimited JSON byte stream, in order, without their line ends.
 * The last line counts even without a final newline. Parsing each is left to the caller, who knows
 * what a bad line means.
 */
export async function* ndjsonLines(
  body: AsyncIterable<Uint8Array>,
  maxLine = MAX_NDJSON_LINE,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  const take = function* (flush: boolean): Generator<string> {
    let start = 0;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n", start)) {
      const line = buffer.slice(start, nl).trim();
      if (line !== "") yield line;
      start = nl + 1;
    }
    buffer = buffer.slice(start);
    if (flush) {
      const last = buffer.trim();
      buffer = "";
      if (last !== "") yield last;
    }
    if (buffer.length > maxLine) throw new RangeError(`an NDJSON line is longer than ${maxLine} characters`);
  };
  for await (const bytes of body) {
    buffer += decoder.decode(bytes, { stream: true });
    yield* take(false);
  }
  buffer += decoder.decode();
  yield* take(true);
}
