import { type AuditEventView, type AuditVerification, verifyAuditChain } from "@beta9/protocol";
import type { Store } from "@beta9/store";
import { eventView } from "./chain.ts";

export { verifyAuditExport as verifyExport } from "@beta9/protocol";

const BATCH = 1_000;

/**
 * Check every chain in the store: each event's hash over its canonical form, each link to its
 * predecessor, sequence numbers without gaps, and every checkpoint's signature and hash. With
 * `publicKey` (SPKI PEM; several allowed) a checkpoint counts only if signed by one of them;
 * without, by the key it names (which shows edits, not a forger who re-signs with a key of his own).
 */
export async function verifyChains(store: Store, publicKey?: string | string[]): Promise<AuditVerification> {
  const checkpoints = await store.audit.checkpoints();
  const prunes = await store.audit.prunes();
  const chains = await store.audit.chains();
  const results: AuditVerification["chains"] = [];
  for (const chain of chains) {
    async function* events(): AsyncGenerator<AuditEventView> {
      let from = 1;
      for (;;) {
        const rows = await store.audit.range(chain, from, BATCH);
        for (const r of rows) yield eventView(r);
        if (rows.length < BATCH) return;
        from = Number(rows.at(-1)?.seq) + 1;
      }
    }
    results.push(await verifyAuditChain(chain, events(), checkpoints, prunes, publicKey));
  }
  return { ok: results.every((r) => r.broken_at === null), chains: results };
}
