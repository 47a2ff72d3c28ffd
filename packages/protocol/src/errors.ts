/**
 * Stable, machine-readable error codes. Clients switch on these; the message is for people.
 * Add codes; never rename one.
 */
export const ErrorCodes = [
  "bad_request",
  "payload_too_large",
  "unauthorized",
  "forbidden",
  "not_found",
  "conflict",
  "rate_limited",
  "internal",
  "unavailable",
  "join_token_invalid",
  "join_token_expired",
  "join_token_used_up",
  "join_token_revoked",
  "machine_unknown",
  "credential_invalid",
  "credential_machine_mismatch",
  "machine_id_taken",
  "pool_unknown",
  "api_key_invalid",
  "api_key_revoked",
  "scope_missing",
  "model_not_found",
  "invalid_model_name",
  "invalid_source",
  "path_not_allowed",
  "checksum_mismatch",
  "download_failed",
  "insufficient_memory",
  "no_engine",
  "engine_not_installed",
  "engine_start_failed",
  "engine_unavailable",
  "engine_timeout",
  "invalid_gguf",
  "download_timeout",
  "download_too_large",
  "insufficient_disk",
  "invalid_checksum",
  "pull_in_progress",
  "model_changed",
  "record_corrupt",
  "model_owned",
  "source_unreachable",
  "runner_not_installed",
  "residency",
  "country_mismatch",
  "invalid_country",
  "session_expired",
  "csrf",
  "sso_refused",
  "sso_failed",
  "sso_state",
  "sso_token_invalid",
  "authorization_pending",
  "slow_down",
  "sso_disabled",
  "agent_unsupported",
  "invalid_quantization",
  "conversion_failed",
  "converter_unavailable",
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

/** What every error answer's body is. (A plain type: this module is loaded by the warm engine, which keeps no schema builder.) */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** HTTP status that each code is answered with. */
export const errorStatus: Record<ErrorCode, number> = {
  bad_request: 400,
  payload_too_large: 413,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  join_token_invalid: 401,
  join_token_expired: 401,
  join_token_used_up: 401,
  join_token_revoked: 401,
  machine_unknown: 401,
  credential_invalid: 401,
  credential_machine_mismatch: 403,
  machine_id_taken: 409,
  pool_unknown: 404,
  api_key_invalid: 401,
  api_key_revoked: 401,
  scope_missing: 403,
  model_not_found: 404,
  invalid_model_name: 400,
  invalid_source: 400,
  path_not_allowed: 403,
  checksum_mismatch: 422,
  download_failed: 502,
  insufficient_memory: 507,
  no_engine: 422,
  engine_not_installed: 422,
  engine_start_failed: 500,
  engine_unavailable: 502,
  engine_timeout: 504,
  invalid_gguf: 422,
  download_timeout: 504,
  download_too_large: 413,
  insufficient_disk: 507,
  invalid_checksum: 400,
  pull_in_progress: 409,
  model_changed: 409,
  record_corrupt: 500,
  /** The name is another owner's model on that machine. */
  model_owned: 409,
  /** A source could not be fetched, or may not be for this owner: one answer for both, so a tenant learns nothing about the network behind the machine. */
  source_unreachable: 502,
  /** The job needs a runner (podman) that this machine does not have. */
  runner_not_installed: 422,
  /** The workspace (or key) may run only in some countries, and what it asked for is elsewhere. */
  residency: 403,
  /** The country an agent declares at join is not the one its join token binds. */
  country_mismatch: 403,
  /** Not an assigned ISO 3166-1 alpha-2 code. */
  invalid_country: 400,
  /** The signed-in session ended (expired, logged out, or its key revoked): sign in again. */
  session_expired: 401,
  /** A change sent with a session cookie lacked its x-csrf-token (or carried a wrong one). */
  csrf: 403,
  /** The identity provider vouched for the person, but no rule maps their groups to a workspace. */
  sso_refused: 403,
  /** The identity provider could not be reached or answered an error. */
  sso_failed: 502,
  /** A sign-in's state is unknown, expired or used already. */
  sso_state: 400,
  /** A provider's token failed verification (issuer, audience, expiry, signature). */
  sso_token_invalid: 401,
  /** A device sign-in not yet approved by its person (RFC 8628): poll again. */
  authorization_pending: 428,
  /** A device sign-in polled too often (RFC 8628): wait longer between polls. */
  slow_down: 429,
  /** The gateway has no identity provider configured (--oidc-issuer). */
  sso_disabled: 404,
  agent_unsupported: 426,
  /** Not a quantisation type llama.cpp's quantize tool knows. */
  invalid_quantization: 400,
  /** The converter refused the model (truncated, unknown architecture, no tokenizer): nothing was kept. */
  conversion_failed: 422,
  /** This machine lacks what the converter needs (a C++ compiler, git, the engine's libraries). */
  converter_unavailable: 422,
};

/** An error that knows its stable code; servers turn it into an ErrorBody. */
export class Beta9Error extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "Beta9Error";
    this.code = code;
    this.status = errorStatus[code];
  }
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}
