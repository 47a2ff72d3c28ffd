/** Why the pipeline did not hand back an answer; each API words it in its own error shape. */
export type InferenceFailure =
  /** The key's limits refused it (429, Retry-After). `code`: rate_limited or too_many_concurrent_requests. */
  | "rate_limited"
  /** The caller's workspace has no model of that name (404). */
  | "model_not_found"
  /** No machine could take it: a cold start failed, or every machine tried failed (503, Retry-After). */
  | "unavailable"
  /** The client went away before any machine answered: nobody to answer (metered as 499). */
  | "client_left"
  /** Only machines outside the countries the workspace or key may run in could take it (403). */
  | "residency";

const STATUS: Record<InferenceFailure, number> = {
  rate_limited: 429,
  model_not_found: 404,
  unavailable: 503,
  client_left: 499,
  residency: 403,
};

/** A request the pipeline refused or could not serve, already metered with `status`. */
export class InferenceError extends Error {
  readonly failure: InferenceFailure;
  readonly status: number;
  /** The stable machine-readable code (OpenAI's `code`). */
  readonly code: string;
  /** Seconds for the Retry-After header. */
  readonly retryAfterS: number | undefined;
  /** The model as the client named it, and (for model_not_found) the models the workspace has. */
  readonly model: string;
  readonly known: readonly string[];

  constructor(
    failure: InferenceFailure,
    message: string,
    o: { model: string; code?: string; retryAfterS?: number; known?: readonly string[] },
  ) {
    super(message);
    this.name = "InferenceError";
    this.failure = failure;
    this.status = STATUS[failure];
    this.code = o.code ?? failure;
    this.retryAfterS = o.retryAfterS;
    this.model = o.model;
    this.known = o.known ?? [];
  }
}
