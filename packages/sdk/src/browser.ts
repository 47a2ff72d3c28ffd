/**
 * The SDK without Node: the transport and resources over the browser's fetch, for the dashboard
 * (packages/ui). Nothing here may import undici or node:*.
 */
export * from "./errors.ts";
export { CompletionStream } from "./inference/completion-stream.ts";
export { Inference } from "./inference/inference.ts";
export type { ChatMessage, ChatRequest, CompletionChunk } from "./inference/types.ts";
export { Audit, type AuditFilter } from "./resources/audit.ts";
export { Deployments } from "./resources/deployments.ts";
export { Jobs } from "./resources/jobs.ts";
export { ApiKeys } from "./resources/keys.ts";
export { Machines } from "./resources/machines.ts";
export { Pools } from "./resources/pools.ts";
export { Replicas } from "./resources/replicas.ts";
export { Usage } from "./resources/usage.ts";
export { Workspaces } from "./resources/workspaces.ts";
export { type Call, Transport, type TransportOptions } from "./transport.ts";
