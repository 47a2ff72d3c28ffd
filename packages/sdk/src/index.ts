export type * from "@beta9/protocol";
export {
  auditEventHash,
  countryProblem,
  JOB_ENDED,
  JOB_RETRY_CAUSES,
  JOB_STATES,
  MAX_JOB_INPUT_BYTES,
  MachineStatuses,
  parseDuration,
  verifyAuditExport,
} from "@beta9/protocol";
export { Beta9Client, type ClientOptions } from "./client.ts";
export {
  ApiError,
  AuthenticationError,
  BadRequestError,
  Beta9SdkError,
  ConflictError,
  ConnectionError,
  ConnectionLostError,
  ConnectionTimeoutError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  StreamError,
} from "./errors.ts";
export { CompletionStream } from "./inference/completion-stream.ts";
export { DEFAULT_INFERENCE_TIMEOUT_MS, Inference } from "./inference/inference.ts";
export type {
  ChatMessage,
  ChatRequest,
  Completion,
  CompletionChunk,
  Embeddings,
  EmbedRequest,
  GenerateRequest,
  InferenceOptions,
  ModelInfo,
  Role,
  SamplingOptions,
  Usage as TokenUsage,
} from "./inference/types.ts";
export { Audit, type AuditFilter } from "./resources/audit.ts";
export { Deployments } from "./resources/deployments.ts";
export { type JobListFilter, type JobLogOptions, Jobs, jobEnded } from "./resources/jobs.ts";
export { ApiKeys } from "./resources/keys.ts";
export { type MachineListFilter, Machines } from "./resources/machines.ts";
export { Pools } from "./resources/pools.ts";
export { Replicas } from "./resources/replicas.ts";
export { type AiActFilter, Reports } from "./resources/reports.ts";
export { JoinTokens } from "./resources/tokens.ts";
export { Usage, type UsageFilter } from "./resources/usage.ts";
export { Workspaces } from "./resources/workspaces.ts";
export { ndjsonLines } from "./streaming/ndjson.ts";
export { SseDecoder, type SseEvent, sseEvents } from "./streaming/sse.ts";
export { Stream } from "./streaming/stream.ts";
export {
  DEFAULT_TIMEOUT_MS,
  type Fetch,
  normalizeBaseUrl,
  type RequestOptions,
  UntrustedCertificateError,
} from "./transport.ts";
