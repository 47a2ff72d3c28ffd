import type { AuditActor, AuditOutcome } from "@beta9/protocol";

/** One event to record; the log adds its chain, sequence number, time and hashes. */
export interface AuditInput {
  actor: AuditActor;
  /** The workspace's id (the log shows its name); null for none. */
  workspaceId: string | null;
  action: string;
  resource: string | null;
  outcome: AuditOutcome;
  requestId: string | null;
  /** When it happened (ms); the time it is written when absent. `enqueue` stamps it on arrival. */
  at?: number | undefined;
  /** Secrets must already be replaced (Audit.hmac); the log refuses none, so callers take care. */
  details?: Record<string, unknown>;
}

/**
 * The gateway's audit log as its routes use it. Management changes and security events are
 * recorded with `record` and fail closed: when the write fails it throws, and the route answers 503
 * without making the change. Inference requests and jobs' metadata go through `enqueue`: batched,
 * failing open (a counter and a loud log line), never holding an answer.
 */
export interface Audit {
  record(e: AuditInput): Promise<void>;
  enqueue(e: AuditInput): void;
  /** A secret as it may be kept: "hmac-sha256:<hex>" under the gateway's audit key (Vault's practice). */
  hmac(secret: string): string;
}
