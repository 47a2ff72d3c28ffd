import { describe, expect, it } from "vitest";
import { ChannelLineReader } from "./channel-lines.ts";

const read = (r: ChannelLineReader, chunk: string | Buffer, stopAt?: string) => {
  const got: string[] = [];
  r.push(Buffer.from(chunk), (line) => {
    got.push(line);
    return line !== stopAt;
  });
  return got;
};

describe("ChannelLineReader", () => {
  it("hands out whole lines across chunks, blank lines left out", () => {
    const r = new ChannelLineReader(1024);
    expect(read(r, '{"seq":1}\n{"se')).toEqual(['{"seq":1}']);
    expect(read(r, 'q":2}\n\n  \n{"seq":3}\n')).toEqual(['{"seq":2}', '{"seq":3}']);
    expect(r.rest().length).toBe(0);
  });

  it("keeps a character whose bytes arrive in two chunks whole", () => {
    const bytes = Buffer.from('{"model":"café-7b"}\n', "utf8");
    const cut = bytes.indexOf(0xc3) + 1;
    const r = new ChannelLineReader(1024);
    expect(read(r, bytes.subarray(0, cut))).toEqual([]);
    expect(read(r, bytes.subarray(cut))).toEqual(['{"model":"café-7b"}']);
  });

  it("stops at the line the caller says, and keeps the bytes after it undecoded", () => {
    const r = new ChannelLineReader(1024);
    const after = Buffer.from([0x50, 0x52, 0x49, 0x0a, 0xff, 0x00]);
    const chunk = Buffer.concat([Buffer.from('{"seq":1}\n{"switch":"h2"}\n'), after]);
    expect(read(r, chunk, '{"switch":"h2"}')).toEqual(['{"seq":1}', '{"switch":"h2"}']);
    expect(r.rest()).toEqual(after);
    expect(r.rest().length).toBe(0);
  });

  it("refuses a line that never ends, after the whole lines before it", () => {
    const r = new ChannelLineReader(16);
    const got: string[] = [];
    expect(() => r.push(Buffer.from(`ok\n${"x".repeat(17)}`), (l) => got.push(l) > 0)).toThrow(
      /longer than 16/,
    );
    expect(got).toEqual(["ok"]);
  });

  it("does not hold on to the socket's chunk for a partial line", () => {
    const r = new ChannelLineReader(1024);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    chunk.write('{"seq":1}\n{"seq', 0);
    read(r, chunk.subarray(0, 15));
    const held = r.rest();
    expect(held.toString()).toBe('{"seq');
    expect(held.buffer).not.toBe(chunk.buffer);
  });
});
