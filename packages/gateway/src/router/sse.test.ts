import { describe, expect, it } from "vitest";
import { sseData } from "./sse.ts";

async function* pieces(text: string, size: number): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function events(text: string, size = 1 << 20, maxLine?: number): Promise<string[]> {
  const out: string[] = [];
  for await (const d of sseData(pieces(text, size), maxLine)) out.push(d);
  return out;
}

describe("sseData", () => {
  const stream =
    'data: {"choices":[{"delta":{"content":"Pa"}}]}\n\n' +
    ": keep-alive\n\n" +
    'data: {"choices":[{"delta":{"content":"ris ✓"}}]}\r\n\r\n' +
    "event: note\ndata: first\ndata:second\nid: 7\n\n" +
    "data: \n\n" +
    "data: [DONE]\n\n";
  const expected = [
    '{"choices":[{"delta":{"content":"Pa"}}]}',
    '{"choices":[{"delta":{"content":"ris ✓"}}]}',
    "first\nsecond",
    "",
    "[DONE]",
  ];

  it("yields each event's data in order, skipping comments and other fields, CRLF or LF", async () => {
    expect(await events(stream)).toEqual(expected);
  });

  it("gives the same events whatever the byte boundaries, even inside a UTF-8 character", async () => {
    for (const size of [1, 2, 3, 7, 64]) expect(await events(stream, size)).toEqual(expected);
  });

  it("ends an event the stream ends without a blank line", async () => {
    expect(await events("data: a\n\ndata: b")).toEqual(["a", "b"]);
    expect(await events("data: a\ndata: b\r\n")).toEqual(["a\nb"]);
  });

  it("refuses a line longer than the limit", async () => {
    await expect(events(`data: ${"x".repeat(100)}`, 10, 50)).rejects.toThrow(/longer than 50 bytes/);
  });
});
