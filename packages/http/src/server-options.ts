import { type FastifyBaseLogger, type FastifyServerOptions, LogController } from "fastify";
import type { Logger } from "pino";
import { clientErrorHandler, replyFrameworkError } from "./errors.ts";

/** Fastify options both servers share: our logger, one line per event we choose (no per-request noise). */
export function serverOptions(log: Logger, bodyLimit = 1024 * 1024): FastifyServerOptions {
  return {
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit,
    frameworkErrors: replyFrameworkError,
    clientErrorHandler,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  };
}
