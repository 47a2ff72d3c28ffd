import { createLogger } from "@beta9/http";
import { describe, expect, it } from "vitest";
import { LogFeed } from "./log-feed.ts";

describe("log feed", () => {
  it("turns the logger's JSON lines into time, level and text, with the reason a warning carries", () => {
    const feed = new LogFeed();
    const log = createLogger({ name: "b9agent", destination: feed });
    log.info("control API listening on 127.0.0.1:9999");
    log.warn({ err: "ECONNREFUSED" }, "cannot reach the gateway; will retry");
    log.error({ err: new Error("engine exited") }, "could not start smol");
    log.debug("hidden at the default level");
    expect(feed.last(10).map((l) => [l.level, l.text])).toEqual([
      ["info", "control API listening on 127.0.0.1:9999"],
      ["warn", "cannot reach the gateway; will retry: ECONNREFUSED"],
      ["error", "could not start smol: engine exited"],
    ]);
    expect(feed.last(1)[0]?.time).toBeGreaterThan(Date.now() - 10_000);
  });

  it("unwraps an engine's own JSON line and keeps the worse of the two levels", () => {
    const feed = new LogFeed();
    const log = createLogger({ name: "b9agent", destination: feed });
    log.info({ engine: "builtin" }, JSON.stringify({ level: 50, msg: "model file is truncated" }));
    log.info({ engine: "vllm" }, "INFO 01-15 Loading safetensors checkpoint shards: 50%");
    log.info({ engine: "builtin" }, JSON.stringify({ event: "listening", port: 4242 }));
    expect(feed.last(3).map((l) => [l.level, l.text])).toEqual([
      ["error", "model file is truncated"],
      ["info", "INFO 01-15 Loading safetensors checkpoint shards: 50%"],
      ["info", "listening (port 4242)"],
    ]);
  });

  it("keeps only the newest lines", () => {
    const feed = new LogFeed(10);
    for (let i = 0; i < 100; i++) feed.push({ time: i, level: "info", text: `line ${i}` });
    expect(feed.last(1000).map((l) => l.text)).toEqual(
      Array.from({ length: 10 }, (_, i) => `line ${90 + i}`),
    );
  });
});
