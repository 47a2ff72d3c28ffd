import type { NewUsageRow } from "@beta9/store";
import type { Audit, AuditInput } from "../audit/audit.ts";
import type { CapturedContent } from "../audit/content.ts";

/** What an inference request's event says beyond its usage row. */
export interface InferenceFacts {
  /** The model's sha256 when known (a deployment's pinned one, or what the machine pulled for it). */
  sha256: string | null;
  /** The prompt and the answer: only for a workspace that chose to keep them (`--audit-content on`). */
  content?: CapturedContent | undefined;
}

/**
 * Every inference request's audit event, at metadata level: who (key), workspace, model and its
 * sha256, machine and its country, tokens, status, energy and gCO2e when measured, request id. Never
 * the prompt or the answer, unless the workspace chose to keep them (its GDPR choice). Through `enqueue`: batched and failing open, so an answer never waits on
 * the log and a log that cannot be written never refuses one (it counts and says so loudly instead).
 */
export class InferenceAudit {
  readonly #audit: Audit;
  readonly #country: (machineId: string) => string | null | undefined;

  constructor(audit: Audit, country: (machineId: string) => string | null | undefined) {
    this.#audit = audit;
    this.#country = country;
  }

  request(row: NewUsageRow, facts: InferenceFacts): void {
    this.#audit.enqueue(
      inferenceEvent(row, facts, row.machine_id ? (this.#country(row.machine_id) ?? null) : null),
    );
  }
}

export function inferenceEvent(row: NewUsageRow, facts: InferenceFacts, country: string | null): AuditInput {
  return {
    actor: { type: "key", id: row.key_id },
    workspaceId: row.workspace_id,
    action: "inference.request",
    resource: `model:${row.model}`,
    outcome: outcomeOf(row.status),
    requestId: row.request_id ?? null,
    details: {
      model: row.model,
      model_sha256: facts.sha256,
      machine_id: row.machine_id,
      country,
      status: row.status,
      prompt_tokens: row.prompt_tokens,
      completion_tokens: row.completion_tokens,
      latency_ms: row.latency_ms,
      // Null when nothing was measured: unknown, never zero.
      energy_wh: row.energy_wh ?? null,
      co2e_g: row.co2e_g ?? null,
      ...(facts.content ? { content: facts.content } : {}),
    },
  };
}

/** The client's status as an outcome: refused when the caller's request was (4xx), failed when ours was or it was cut off. */
function outcomeOf(status: number): AuditInput["outcome"] {
  if (status < 400) return "ok";
  // 499: the client left; the request did not end as asked, but nobody refused it.
  return status < 500 && status !== 499 ? "refused" : "failed";
}
