import { describe, expect, it } from "vitest";
import { GgufHeaderCache } from "./gguf-cache.ts";

describe("GGUF header cache", () => {
  it("reads a file once while its identity stays, again when it changes", async () => {
    const cache = new GgufHeaderCache<string>();
    let reads = 0;
    const read = async () => `header ${++reads}`;
    expect(await cache.get("1:2:100:5:/m.gguf", read)).toBe("header 1");
    expect(await cache.get("1:2:100:5:/m.gguf", read)).toBe("header 1");
    // Rewritten in place: another size and modification time.
    expect(await cache.get("1:2:120:6:/m.gguf", read)).toBe("header 2");
  });

  it("keeps no failed read, and drops the least recently used beyond its size", async () => {
    const cache = new GgufHeaderCache<string>(2);
    await expect(cache.get("a", async () => Promise.reject(new Error("truncated")))).rejects.toThrow(
      "truncated",
    );
    expect(await cache.get("a", async () => "a ok")).toBe("a ok");
    await cache.get("b", async () => "b");
    await cache.get("a", async () => "a again"); // a is now the most recent
    await cache.get("c", async () => "c"); // b goes
    expect(await cache.get("a", async () => "a reread")).toBe("a ok");
    expect(await cache.get("b", async () => "b reread")).toBe("b reread");
  });
});
