import { describe, expect, it } from "vitest";
import { ndjsonLines, SseDecoder, sseEvents } from "../src/index.ts";

async function* bytes(...parts: Array<string | number[]>): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === "string" ? new TextEncoder().encode(p) : Uint8Array.from(p);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const data = async (...parts: Array<string | number[]>) =>
  (await collect(sseEvents(bytes(...parts)))).map((e) => e.data);

describe("server-sent events", () => {
  it("dispatches one event per blank line, whatever the line ends (LF, CRLF, CR)", async () => {
    expect(await data("data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\n")).toEqual(["a", "b", "c", "d"]);
  });

  it("reads a CR at the end of one chunk and an LF at the start of the next as one line end", async () => {
    // Read as two line ends, the blank line between would end the event after "a".
    expect(await data("data: a\r", "\ndata: b\r\n\r\n")).toEqual(["a\nb"]);
  });

  it("joins an event's data lines with newlines and keeps events split across chunks whole", async () => {
    expect(await data("da", 'ta: {"x":', "1}\ndata: two\n", "\n")).toEqual(['{"x":1}\ntwo']);
  });

  it("skips comments, strips one space after the colon, and reads event and id fields", async () => {
    const events = await collect(
      sseEvents(bytes(": keep-alive\n\nevent: error\nid: 7\ndata:no-space\ndata:  two spaces\n\n")),
    );
    expect(events).toEqual([{ event: "error", data: "no-space\n two spaces", id: "7" }]);
  });

  it("gives events without a name the type message, and drops blank events without data", async () => {
    const events = await collect(sseEvents(bytes("event: ping\n\ndata: x\n\n")));
    expect(events).toEqual([{ event: "message", data: "x", id: undefined }]);
  });

  it("decodes UTF-8 split across chunks and drops a byte order mark", async () => {
    const euro = [...new TextEncoder().encode("data: 5 €\n\n")];
    const cut = euro.length - 3; // inside the three bytes of "€"
    expect(await data([0xef, 0xbb, 0xbf], euro.slice(0, cut), euro.slice(cut))).toEqual(["5 €"]);
  });

  it("drops an event the stream ends before closing with a blank line", async () => {
    expect(await data("data: whole\n\ndata: cut")).toEqual(["whole"]);
  });

  it("refuses a line longer than the limit instead of buffering without end", () => {
    const sse = new SseDecoder(10);
    expect(() => sse.push("data: 0123456789")).toThrow(/longer than 10/);
  });
});

describe("NDJSON", () => {
  it("yields each non-blank line, across chunks, CRLF or LF, and the last line without a newline", async () => {
    const lines = await collect(ndjsonLines(bytes('{"a":', '1}\r\n\n{"b":2}\n{"c"', ":3}")));
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });
});
