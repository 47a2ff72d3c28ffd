export type * from "@beta9/protocol";
export { parseDuration } from "@beta9/protocol";
export { Beta9Client, type ClientOptions } from "./client.ts";
export {
  ApiError,
  AuthenticationError,
  BadRequestError,
  Beta9SdkError,
  ConflictError,
  ConnectionError,
  ConnectionTimeoutError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
} from "./errors.ts";
export { Deployments } from "./resources/deployments.ts";
export { ApiKeys } from "./resources/keys.ts";
export { type MachineListFilter, Machines } from "./resources/machines.ts";
export { Pools } from "./resources/pools.ts";
export { Replicas } from "./resources/replicas.ts";
export { JoinTokens } from "./resources/tokens.ts";
export { Usage, type UsageFilter } from "./resources/usage.ts";
export { DEFAULT_TIMEOUT_MS, type Fetch, normalizeBaseUrl, type RequestOptions } from "./transport.ts";
