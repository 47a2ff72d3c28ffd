import { createRequire } from "node:module";
import pino, { type DestinationStream, type Logger, type LoggerOptions } from "pino";
import type PinoPretty from "pino-pretty";

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

const CENSOR = "[redacted]";
const SECRET_FIELDS = ["token", "credential", "key"] as const;
const isSecretField = (k: string) => k === "token" || k === "credential" || k === "key";

/**
 * REDACT's paths, applied to a line's fields: `fields` itself when none of them is there (a request's
 * line: nothing allocated, where pino's own redaction ran a redactor per field, 3 to 6 µs a line), else
 * a copy with each censored. Copies keep their prototype (an Error is still serialized as one).
 */
export function redactSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in fields) {
    if (!Object.hasOwn(fields, k)) continue;
    const v = fields[k];
    if (v === undefined) continue;
    let safe: unknown = v;
    if (isSecretField(k)) safe = CENSOR;
    else if (typeof v === "object" && v !== null && !Array.isArray(v)) safe = censorFields(v, k);
    if (safe === v) continue;
    out ??= { ...fields };
    out[k] = safe;
  }
  return out ?? fields;
}

/** One level down (`*.token`, `headers.authorization`, `req.headers.authorization`): `v` or a censored copy. */
function censorFields(v: object, key: string): object {
  const own = v as Record<string, unknown>;
  const changes: Record<string, unknown> = {};
  let changed = false;
  for (const f of SECRET_FIELDS) {
    if (!Object.hasOwn(v, f) || own[f] === undefined) continue;
    changes[f] = CENSOR;
    changed = true;
  }
  const headers = key === "req" ? own.headers : key === "headers" ? v : undefined;
  if (typeof headers === "object" && headers !== null && "authorization" in headers) {
    if (key === "headers") changes.authorization = CENSOR;
    else changes.headers = copyWith(headers, { authorization: CENSOR });
    changed = true;
  }
  return changed ? copyWith(v, changes) : v;
}

function copyWith(v: object, changes: Record<string, unknown>): object {
  const descriptors = Object.getOwnPropertyDescriptors(v);
  // Read through own getters now (an Error's `stack` answers only on the error it belongs to).
  for (const [f, d] of Object.entries(descriptors))
    if (d.get)
      descriptors[f] = {
        value: (v as Record<string, unknown>)[f],
        enumerable: d.enumerable ?? false,
        writable: true,
        configurable: true,
      };
  const copy = Object.create(Object.getPrototypeOf(v), descriptors) as object;
  for (const [f, value] of Object.entries(changes))
    Object.defineProperty(copy, f, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

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
    // REDACT, on every line's fields (children's bindings: redactingChildren).
    formatters: { log: redactSecrets },
    ...rest,
  };
  if (destination) return redactingChildren(pino(opts, destination));
  if (wantPretty ?? process.stdout.isTTY) {
    // Loaded only for a terminal: a daemon's or an engine's piped logs need none of it (~2 MB).
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
    return redactingChildren(
      pino(opts, pretty({ sync: true, translateTime: "HH:MM:ss", ignore: "pid,hostname" })),
    );
  }
  // Written asynchronously: lines that come while a write is under way go out together in one
  // write (one syscall per request was a measurable part of the request path); still flushed at exit.
  return redactingChildren(pino(opts, pino.destination({ dest: 1, sync: false })));
}

/**
 * pino gives a child's bindings to no formatter, so `child` itself censors them; children inherit
 * this `child` from the root (each is made with the root as its prototype).
 */
function redactingChildren(root: Logger): Logger {
  const child = root.child;
  root.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings), options);
  } as Logger["child"];
  return root;
}

export type { Logger };
