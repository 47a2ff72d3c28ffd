import { describe, expect, it } from "vitest";
import { countStreamedTokens } from "./engine-energy.ts";

const event = (content: string) =>
  `data: ${JSON.stringify({ choices: [{ delta: { content }, index: 0 }], object: "chat.completion.chunk" })}\n\n`;

describe("countStreamedTokens", () => {
  it("counts one per server-sent event of a chunk, whatever its size, and never [DONE]", () => {
    expect(countStreamedTokens(Buffer.from(event("Paris")))).toBe(1);
    expect(countStreamedTokens(Buffer.from(event("The") + event(" capital") + event(" is")))).toBe(3);
    expect(countStreamedTokens(Buffer.from(`${event(".")}data: [DONE]\n\n`))).toBe(1);
    expect(countStreamedTokens(Buffer.from("data: [DONE]\n\n"))).toBe(0);
    expect(countStreamedTokens(Buffer.alloc(0))).toBe(0);
  });

  it("counts only a line that starts with data: (not the words inside an answer), and a chunk cut short", () => {
    // A token whose text is "data: " is inside the JSON, not at a line's start.
    expect(countStreamedTokens(Buffer.from(event("data: x")))).toBe(1);
    expect(countStreamedTokens(Buffer.from(": keep-alive\n\nevent: ping\n\n"))).toBe(0);
    // An event split across two chunks counts in the one that holds its start.
    const whole = Buffer.from(event("Paris") + event("!"));
    const cut = whole.indexOf("data: ", 1) + 9;
    expect(countStreamedTokens(whole.subarray(0, cut)) + countStreamedTokens(whole.subarray(cut))).toBe(2);
    // A chunk ending before its marker is whole.
    expect(countStreamedTokens(Buffer.from("data: [DO"))).toBe(1);
  });
});
