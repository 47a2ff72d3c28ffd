import { describe, expect, it } from "vitest";
import { DEFAULT_COMPLETION_RESERVE, estimateNeed } from "./token-estimate.ts";

describe("estimateNeed", () => {
  it("counts a chat's text at four characters a token, a few more per message, and reserves its max_tokens", () => {
    const need = estimateNeed(
      {
        messages: [
          { role: "system", content: "x".repeat(400) },
          { role: "user", content: [{ type: "text", text: "y".repeat(400) }, { type: "image_url" }] },
        ],
        max_tokens: 64,
      },
      "/v1/chat/completions",
    );
    expect(need).toEqual({ prompt: 200 + 2 * 3, completion: 64 });
  });

  it("reserves the default for a generation that names no limit, and each of n answers", () => {
    expect(estimateNeed({ prompt: "abcd" }, "/v1/completions")).toEqual({
      prompt: 1,
      completion: DEFAULT_COMPLETION_RESERVE,
    });
    expect(
      estimateNeed({ prompt: ["abcd", [1, 2, 3]], max_completion_tokens: 10, n: 3 }, "/v1/completions"),
    ).toEqual({
      prompt: 4,
      completion: 30,
    });
  });

  it("reserves no completion for embeddings", () => {
    expect(estimateNeed({ input: ["a".repeat(40), "b".repeat(40)] }, "/v1/embeddings")).toEqual({
      prompt: 20,
      completion: 0,
    });
  });
});
