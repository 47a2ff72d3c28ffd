import pino, { type DestinationStream } from "pino";
import { describe, expect, it } from "vitest";
import { createLogger, REDACT } from "./logger.ts";

/** The lines a logger writes, parsed, without the time (two loggers never write in the same ms). */
function capture(): { dest: DestinationStream; lines: () => Record<string, unknown>[] } {
  const raw: string[] = [];
  return {
    dest: { write: (s: string) => raw.push(s) },
    lines: () =>
      raw.map((s) => {
        const { time: _time, ...rest } = JSON.parse(s) as Record<string, unknown>;
        return rest;
      }),
  };
}

function withToken(message: string, token: string): Error {
  return Object.assign(new Error(message), { token });
}

const SECRET = "b9k_live_s3cr3t";

describe("createLogger", () => {
  it("censors every REDACT path exactly as pino's own redaction did, and writes plain lines unchanged", () => {
    const ours = capture();
    const theirs = capture();
    const log = createLogger({ name: "t", destination: ours.dest });
    // The logger of before: pino's redaction over the same paths.
    const reference = pino({ name: "t", redact: { paths: REDACT, censor: "[redacted]" } }, theirs.dest);
    const lines: [Record<string, unknown>, string][] = [
      [{ request_id: "r1", model: "m", status: 200, latency_ms: 3 }, "inference request"],
      [{ token: SECRET, credential: SECRET, key: SECRET, machine_id: "m1" }, "top level"],
      [{ machine: { id: "m1", token: SECRET }, body: { key: SECRET, model: "m" } }, "one level down"],
      [{ headers: { authorization: `Bearer ${SECRET}`, accept: "*/*" } }, "headers"],
      [{ req: { method: "GET", headers: { authorization: `Bearer ${SECRET}`, host: "gw" } } }, "a request"],
      [{ err: withToken("refused", SECRET) }, "an error carrying a token"],
      [
        { list: [{ token: "not a path" }], nested: { deeper: { token: "not a path either" } } },
        "beyond the paths",
      ],
    ];
    for (const [fields, msg] of lines) {
      log.info(fields, msg);
      reference.info(fields, msg);
    }
    log.child({ token: SECRET, machine: { token: SECRET }, pool: "p" }).info("child bindings");
    reference.child({ token: SECRET, machine: { token: SECRET }, pool: "p" }).info("child bindings");
    const stack = (l: Record<string, unknown>) => ({
      ...l,
      err: l.err && { ...(l.err as object), stack: "" },
    });
    expect(ours.lines().map(stack)).toEqual(theirs.lines().map(stack));
    expect(JSON.stringify(ours.lines())).not.toContain(SECRET);
    // What was logged is left as it was: the caller's objects are not censored in place.
    expect((lines[2]![0].machine as { token: string }).token).toBe(SECRET);
    expect((lines[3]![0].headers as { authorization: string }).authorization).toBe(`Bearer ${SECRET}`);
  });

  it("keeps an error an error: its message and stack are still written beside the censored token", () => {
    const out = capture();
    createLogger({ name: "t", destination: out.dest }).error({ err: withToken("refused", SECRET) }, "failed");
    const err = out.lines()[0]?.err as { message: string; stack: string; token: string };
    expect(err.message).toBe("refused");
    expect(err.stack).toContain("refused");
    expect(err.token).toBe("[redacted]");
  });
});
