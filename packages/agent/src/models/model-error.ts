import { Beta9Error } from "@beta9/protocol";

/**
 * Stable codes for everything that can go wrong in the model store. Clients switch on the code; the
 * message is a sentence a person can act on. Add codes; never rename one.
 */
export const ModelErrorCodes = [
  "invalid_model_name",
  "invalid_source",
  "path_not_allowed",
  "invalid_gguf",
  "download_failed",
  "download_timeout",
  "download_too_large",
  "insufficient_disk",
  "checksum_mismatch",
  "invalid_checksum",
  "pull_in_progress",
  "model_not_found",
  "model_changed",
  "record_corrupt",
  "insufficient_memory",
  "model_owned",
  "source_unreachable",
  "invalid_quantization",
  "conversion_failed",
  "converter_unavailable",
] as const;
export type ModelErrorCode = (typeof ModelErrorCodes)[number];

/** The model store's errors are ordinary Beta9 errors: stable code, HTTP status, JSON body. */
export class ModelError extends Beta9Error {
  declare readonly code: ModelErrorCode;
  constructor(code: ModelErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "ModelError";
  }
}

export function isModelError(err: unknown, code?: ModelErrorCode): err is ModelError {
  return err instanceof ModelError && (code === undefined || err.code === code);
}
