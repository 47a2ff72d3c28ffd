import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import pretty from "pino-pretty";

/** Fields that may carry secrets are never written, whatever logs them. */
export const REDACT = [
  "req.headers.authorization",
  "headers.authorization",
  "token",
  "credential",
  "key",
  "*.token",
  "*.credential",
  "*.key",
  "machine.token",
];

/**
 * Structured logs, one event per line. On a terminal the lines are made readable; piped, they stay
 * JSON for machines. `pretty` forces either. A `destination` takes the JSON lines instead (the agent's
 * dashboard shows them in its own panel while it owns the terminal).
 */
export function createLogger(
  options: LoggerOptions & { name: string; pretty?: boolean; destination?: DestinationStream },
): Logger {
  const { pretty: wantPretty, destination, ...rest } = options;
  const opts: LoggerOptions = {
    level: process.env.BETA9_LOG_LEVEL ?? "info",
    redact: { paths: REDACT, censor: "[redacted]" },
    ...rest,
  };
  if (destination) return pino(opts, destination);
  if (wantPretty ?? process.stdout.isTTY) {
    return pino(opts, pretty({ sync: true, translateTime: "HH:MM:ss", ignore: "pid,hostname" }));
  }
  // Written asynchronously: lines that come while a write is under way go out together in one
  // write (one syscall per request was a measurable part of the request path); still flushed at exit.
  return pino(opts, pino.destination({ dest: 1, sync: false }));
}

export type { Logger };
