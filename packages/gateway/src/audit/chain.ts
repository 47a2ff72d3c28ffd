import type { AuditEventView } from "@beta9/protocol";
import type { AuditEventRow } from "@beta9/store";

export { auditEventHash as eventHash, checkpointMessage, GENESIS } from "@beta9/protocol";

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
