/**
 * The `data` of each server-sent event in a byte stream, in order (an event's several data lines are
 * joined with "\n", as the SSE spec says). Comments and other fields are skipped. A line longer than
 * `maxLine` bytes is refused, so a peer that never ends a line cannot grow our memory. One loop, no
 * generator per line: it runs for every token of every stream.
 */
export async function* sseData(
  body: AsyncIterable<Buffer>,
  maxLine = 4 * 1024 * 1024,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  // The data lines of the event being read (most events have one).
  let data: string | undefined;
  let more: string[] | undefined;
  const take = (line: string, from: number, to: number): void => {
    if (!line.startsWith("data:", from)) return;
    const value = line.slice(from + (line.charCodeAt(from + 5) === 32 ? 6 : 5), to);
    if (data === undefined) data = value;
    else if (more) more.push(value);
    else more = [data, value];
  };
  const event = (): string => {
    const d = more ? more.join("\n") : data!;
    data = undefined;
    more = undefined;
    return d;
  };
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n", start)) {
      const end = nl > start && buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      if (end === start) {
        if (data !== undefined) yield event();
      } else take(buf, start, end);
      start = nl + 1;
    }
    if (start > 0) buf = buf.slice(start);
    if (buf.length > maxLine) throw new Error(`an event line is longer than ${maxLine} bytes`);
  }
  buf += decoder.decode();
  for (const line of buf.split("\n")) {
    const end = line.endsWith("\r") ? line.length - 1 : line.length;
    if (end === 0) {
      if (data !== undefined) yield event();
    } else take(line, 0, end);
  }
  if (data !== undefined) yield event();
}
