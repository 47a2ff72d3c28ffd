/**
 * The `data` of each server-sent event in a byte stream, in order (an event's several data lines are
 * joined with "\n", as the SSE spec says). Comments and other fields are skipped. A line longer than
 * `maxLine` bytes is refused, so a peer that never ends a line cannot grow our memory.
 */
export async function* sseData(
  body: AsyncIterable<Buffer>,
  maxLine = 4 * 1024 * 1024,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  let data: string[] = [];
  const lines = function* (text: string, flush: boolean): Generator<string> {
    buf += text;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf("\n", start);
      if (nl < 0) break;
      yield buf.slice(start, nl).replace(/\r$/, "");
      start = nl + 1;
    }
    buf = buf.slice(start);
    if (flush && buf !== "") {
      yield buf;
      buf = "";
    }
    if (buf.length > maxLine) throw new Error(`an event line is longer than ${maxLine} bytes`);
  };
  const take = function* (line: string): Generator<string> {
    if (line === "") {
      if (data.length > 0) yield data.join("\n");
      data = [];
    } else if (line.startsWith("data:")) {
      data.push(line.slice(line[5] === " " ? 6 : 5));
    }
  };
  for await (const chunk of body) {
    for (const line of lines(decoder.decode(chunk, { stream: true }), false)) yield* take(line);
  }
  for (const line of lines(decoder.decode(), true)) yield* take(line);
  yield* take("");
}
