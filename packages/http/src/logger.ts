import pino, { type Logger, type LoggerOptions } from "pino";
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
 * JSON for machines. `pretty` forces either.
 */
export function createLogger(options: LoggerOptions & { name: string; pretty?: boolean }): Logger {
  const { pretty: wantPretty, ...rest } = options;
  const opts: LoggerOptions = {
    level: process.env.BETA9_LOG_LEVEL ?? "info",
    redact: { paths: REDACT, censor: "[redacted]" },
    ...rest,
  };
  if (wantPretty ?? process.stdout.isTTY) {
    return pino(opts, pretty({ sync: true, translateTime: "HH:MM:ss", ignore: "pid,hostname" }));
  }
  return pino(opts);
}

export type { Logger };
