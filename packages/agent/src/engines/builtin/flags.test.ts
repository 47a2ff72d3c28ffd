import { describe, expect, it } from "vitest";
import { FlagError, parseFlags } from "./flags.ts";

describe("builtin engine flags", () => {
  it("reads the command line the agent writes", () => {
    expect(parseFlags(["--threads", "2", "--gpu", "false", "--memory-budget", "8589934592"])).toEqual({
      port: 0,
      threads: 2,
      gpu: false,
      memoryBudget: 8589934592,
      maxQueue: 64,
      watchStdin: true,
    });
    expect(
      parseFlags(["--gpu", "auto", "--port", "8080", "--max-queue", "3", "--ignore-stdin"]),
    ).toMatchObject({
      port: 8080,
      threads: undefined,
      gpu: "auto",
      memoryBudget: undefined,
      maxQueue: 3,
      watchStdin: false,
    });
    expect(parseFlags(["--gpu", "cuda"]).gpu).toBe("cuda");
  });

  it("says what is wrong with a bad flag", () => {
    expect(() => parseFlags(["--threads", "0"])).toThrow(/--threads takes a whole number from 1/);
    expect(() => parseFlags(["--memory-budget", "8GB"])).toThrow(/--memory-budget takes a whole number/);
    expect(() => parseFlags(["--gpu", "rocm"])).toThrow(/--gpu takes auto, false, cuda, vulkan or metal/);
    expect(() => parseFlags(["--host", "0.0.0.0"])).toThrow(FlagError);
    expect(() => parseFlags(["--port", "70000"])).toThrow(/usage:/);
  });
});
