import type { FastifyBaseLogger, FastifyServerOptions } from "fastify";
import type { Bindings, ChildLoggerOptions } from "pino";

const METHODS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
type Method = (typeof METHODS)[number];

/**
 * A request's logger (`req.log`), whose pino child is made when the request first logs: most
 * requests never do (an inference request's one line is written by its meter), and fastify's default
 * made a child, its bindings serialized, for every request.
 */
class RequestLog {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #log: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  logger(): FastifyBaseLogger {
    this.#log ??= this.#parent.child(this.#bindings, this.#options);
    return this.#log;
  }

  get level(): string {
    return this.#log?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.logger().level = level;
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger().child(bindings, options);
  }
}

for (const m of METHODS) {
  Object.defineProperty(RequestLog.prototype, m, {
    value(this: RequestLog, ...args: unknown[]) {
      const log = this.logger();
      return (log[m] as (...a: unknown[]) => void).apply(log, args);
    },
  });
}

/** fastify's `childLoggerFactory`: each request's `req.log`, a RequestLog. */
export const lazyRequestLog: NonNullable<FastifyServerOptions["childLoggerFactory"]> = (
  logger,
  bindings,
  options,
) => new RequestLog(logger, bindings, options) as unknown as FastifyBaseLogger & Record<Method, unknown>;
