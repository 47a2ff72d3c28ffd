import SerializerSelector from "@fastify/fast-json-stringify-compiler";
import { type FastifyBaseLogger, type FastifyServerOptions, LogController } from "fastify";
import type { Logger } from "pino";
import { clientErrorHandler, replyFrameworkError } from "./errors.ts";
import { requestIdOf } from "./request-id.ts";
import { lazyRequestLog } from "./request-log.ts";
import { forSerialization } from "./serialize-schema.ts";

/** Fastify's own serializer compiler, given each response schema as forSerialization writes it. */
const buildSerializer: SerializerSelector.SerializerFactory = (externalSchemas, options) => {
  const compile = SerializerSelector()(externalSchemas, options);
  return (route) => compile({ ...route, schema: forSerialization(route.schema) });
};

/**
 * Fastify options both servers share: our logger, one line per event we choose (no per-request noise),
 * and each request's id (requestIdOf) on every line its `req.log` writes, as `request_id` (that
 * logger made only if the request logs: lazyRequestLog), and response schemas serialised without
 * checking their unions value by value (serialize-schema.ts).
 */
export function serverOptions(log: Logger, bodyLimit = 1024 * 1024): FastifyServerOptions {
  return {
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: "request_id" }),
    genReqId: requestIdOf,
    childLoggerFactory: lazyRequestLog,
    bodyLimit,
    frameworkErrors: replyFrameworkError,
    clientErrorHandler,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    schemaController: { compilersFactory: { buildSerializer } },
  };
}
