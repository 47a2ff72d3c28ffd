export * from "./bearer.ts";
export * from "./channel-lines.ts";
export * from "./errors.ts";
export * from "./logger.ts";
export * from "./ndjson.ts";
export * from "./proxy.ts";
export * from "./request-id.ts";
export * from "./server-options.ts";
