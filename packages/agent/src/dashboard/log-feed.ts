import { EventEmitter } from "node:events";
import type { DestinationStream } from "pino";

export type LogLevel = "debug" | "info" | "warn" | "error";

/** One log event as the LOGS panel shows it. */
export interface LogLine {
  time: number;
  level: LogLevel;
  text: string;
}

function levelOf(n: unknown): LogLevel {
  const level = typeof n === "number" ? n : 30;
  return level >= 50 ? "error" : level >= 40 ? "warn" : level >= 30 ? "info" : "debug";
}

/** The reason a record carries, whether pino serialized an Error or the caller passed a string. */
function reasonOf(err: unknown): string | undefined {
  if (typeof err === "string") return err;
  if (err && typeof err === "object" && typeof (err as { message?: unknown }).message === "string")
    return (err as { message: string }).message;
  return undefined;
}

function parseRecord(text: string): Record<string, unknown> | undefined {
  if (!text.startsWith("{")) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** A sentence for an engine's JSON line that has no message: its event and facts ("listening (port 4242)"). */
function describe(record: Record<string, unknown>): string {
  const { event, level: _level, time: _time, pid: _pid, hostname: _hostname, ...rest } = record;
  const facts = Object.entries(rest)
    .filter(([, v]) => ["string", "number", "boolean"].includes(typeof v))
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  if (typeof event !== "string") return facts || "(an empty line)";
  return facts ? `${event} (${facts})` : event;
}

/**
 * Where the agent's logger writes while the dashboard owns the terminal: each JSON line becomes a
 * LogLine, the last `capacity` are kept, and listeners hear of each new one. Secrets are redacted by
 * the logger before a line gets here.
 */
export class LogFeed extends EventEmitter<{ line: [LogLine] }> implements DestinationStream {
  readonly #capacity: number;
  #lines: LogLine[] = [];

  constructor(capacity = 1000) {
    super();
    this.#capacity = capacity;
  }

  write(chunk: string): void {
    for (const raw of chunk.split("\n")) {
      if (!raw.trim()) continue;
      let record = parseRecord(raw) ?? { msg: raw };
      // An engine that logs JSON itself (the builtin engine does) arrives as one JSON line inside ours.
      const inner = typeof record.msg === "string" ? parseRecord(record.msg) : undefined;
      if (inner) {
        const level = Math.max(Number(record.level) || 0, Number(inner.level) || 0);
        // A person reads a sentence, never the engine's raw JSON.
        const msg = typeof inner.msg === "string" && inner.msg ? inner.msg : describe(inner);
        record = { ...inner, msg, level, time: record.time };
      }
      const reason = reasonOf(record.err);
      const msg = typeof record.msg === "string" ? record.msg : "";
      this.push({
        time: typeof record.time === "number" ? record.time : Date.now(),
        level: levelOf(record.level),
        text: reason && !msg.includes(reason) ? `${msg}: ${reason}` : msg,
      });
    }
  }

  push(line: LogLine): void {
    this.#lines.push(line);
    // Trim in batches so a busy engine does not copy the buffer on every line.
    if (this.#lines.length > this.#capacity * 1.5) this.#lines = this.#lines.slice(-this.#capacity);
    this.emit("line", line);
  }

  /** The newest `n` lines, oldest first. */
  last(n: number): LogLine[] {
    return this.#lines.slice(-Math.min(n, this.#capacity));
  }
}
