import { describe, expect, it } from "vitest";
import { inspectEvent, JsonUsageTap } from "./answer-usage.ts";

describe("inspectEvent", () => {
  it("tells the usage-only chunk, errors, [DONE] and ordinary chunks apart", () => {
    expect(inspectEvent("[DONE]")).toEqual({ kind: "done" });
    expect(inspectEvent('{"choices":[{"delta":{"content":"hi"}}]}')).toEqual({ kind: "chunk" });
    expect(
      inspectEvent(
        '{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}',
      ),
    ).toEqual({ kind: "usage", usage: { prompt_tokens: 12, completion_tokens: 3 } });
    // usage on a chunk that also carries a choice is counted but not dropped
    expect(
      inspectEvent('{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}'),
    ).toEqual({
      kind: "chunk",
      usage: { prompt_tokens: 1, completion_tokens: 2 },
    });
    expect(inspectEvent('{"choices":[{"delta":{"content":"x"}}],"usage":null}')).toEqual({ kind: "chunk" });
    expect(inspectEvent('{"error":{"message":"gone","code":"worker_lost"}}')).toEqual({ kind: "error" });
    // text that merely mentions the words
    expect(inspectEvent('{"choices":[{"delta":{"content":"the \\"usage\\" of \\"error\\""}}]}')).toEqual({
      kind: "chunk",
    });
    expect(inspectEvent('not json "usage"')).toEqual({ kind: "chunk" });
  });
});

describe("JsonUsageTap", () => {
  const answer = JSON.stringify({
    object: "list",
    data: [{ embedding: Array.from({ length: 2000 }, (_, i) => i / 7) }],
    usage: { prompt_tokens: 5, total_tokens: 5 },
  });
  const feed = (tap: JsonUsageTap, text: string, size: number) => {
    const b = Buffer.from(text);
    for (let i = 0; i < b.length; i += size) tap.push(b.subarray(i, i + size));
  };

  it("reads usage from a whole answer", () => {
    const tap = new JsonUsageTap();
    feed(tap, answer, 333);
    expect(tap.usage()).toEqual({ prompt_tokens: 5, completion_tokens: undefined });
  });

  it("reads it from the tail of an answer larger than it keeps", () => {
    const tap = new JsonUsageTap({ keepBytes: 1000, tailBytes: 200 });
    feed(tap, answer, 97);
    expect(tap.usage()).toEqual({ prompt_tokens: 5, completion_tokens: undefined });
  });

  it("says none when there is none or the answer is not JSON", () => {
    const a = new JsonUsageTap();
    feed(a, '{"choices":[]}', 4);
    expect(a.usage()).toBeUndefined();
    const b = new JsonUsageTap();
    feed(b, "<html>", 4);
    expect(b.usage()).toBeUndefined();
  });
});
