import { createHash } from "node:crypto";
import type { AuditEventView } from "@beta9/protocol";
import type { AuditEventRow } from "@beta9/store";
import canonicalize from "canonicalize";

/** The first event's prev_hash: no predecessor. */
export const GENESIS = "0".repeat(64);

/**
 * An event's hash: sha256 over the RFC 8785 canonical JSON of the event as shown (every field but
 * `hash`, `prev_hash` included), so an export can be checked with any RFC 8785 library.
 */
export function eventHash(e: Omit<AuditEventView, "hash">): string {
  const { chain, seq, at, actor, workspace, action, resource, outcome, request_id, details, prev_hash } = e;
  const form = canonicalize({
    chain,
    seq,
    at,
    actor,
    workspace,
    action,
    resource,
    outcome,
    request_id,
    details,
    prev_hash,
  });
  if (form === undefined) throw new Error("an audit event has no canonical JSON form");
  return createHash("sha256").update(form).digest("hex");
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

/** What a checkpoint's signature covers. */
export function checkpointMessage(c: { chain: string; seq: number; hash: string; at: number }): Buffer {
  return Buffer.from(canonicalize({ chain: c.chain, seq: c.seq, hash: c.hash, at: c.at }) ?? "");
}
