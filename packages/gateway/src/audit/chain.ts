import { createHash } from "node:crypto";
import { type AuditEventView, auditEventForm } from "@beta9/protocol";
import type { AuditEventRow } from "@beta9/store";

export { checkpointMessage, GENESIS } from "@beta9/protocol";

/**
 * An event's hash as the protocol defines it (auditEventHash), computed with node:crypto: on the
 * request path, where WebCrypto's asynchronous digest costs a job and a promise per event.
 */
export function eventHash(e: Omit<AuditEventView, "hash">): string {
  return createHash("sha256").update(auditEventForm(e)).digest("hex");
}

export function eventView(row: AuditEventRow): AuditEventView {
  return {
    chain: row.chain,
    seq: Number(row.seq),
    at: new Date(Number(row.at)).toISOString(),
    actor: { type: row.actor_type as AuditEventView["actor"]["type"], id: row.actor_id },
    workspace: row.workspace,
    action: row.action,
    resource: row.resource,
    outcome: row.outcome as AuditEventView["outcome"],
    request_id: row.request_id,
    details: JSON.parse(row.details) as Record<string, unknown>,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}
