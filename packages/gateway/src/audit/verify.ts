import { createPublicKey, verify } from "node:crypto";
import type { AuditEventView, AuditExportLine } from "@beta9/protocol";
import type { AuditCheckpoint, AuditPrune, Store } from "@beta9/store";
import { checkpointMessage, eventHash, eventView, GENESIS } from "./chain.ts";
import { keyIdOf } from "./keys.ts";

export interface ChainVerification {
  chain: string;
  /** Events checked (those retention removed are not counted). */
  events: number;
  first_seq: number | null;
  last_seq: number | null;
  /** The first sequence number at which the chain is broken: edited, removed or inserted; null when whole. */
  broken_at: number | null;
  /** Why, in a sentence; null when whole. */
  reason: string | null;
  checkpoints: number;
  /** The last checkpoint whose signature and hash hold. */
  last_checkpoint: { seq: number; hash: string; at: string; key_id: string } | null;
}

export interface AuditVerification {
  ok: boolean;
  chains: ChainVerification[];
}

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
  const results: ChainVerification[] = [];
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
    results.push(await verifyChain(chain, events(), checkpoints, prunes, publicKey));
  }
  return { ok: results.every((r) => r.broken_at === null), chains: results };
}

/**
 * An export's lines, read back: the same checks with no database. An export of a period starts
 * within its chains: each chain is checked from its first exported event on. Checkpoints count only
 * when signed by one of `publicKey` (default: the keys the export carries).
 */
export async function verifyExport(
  lines: AuditExportLine[],
  publicKey?: string | string[],
): Promise<AuditVerification> {
  const header = lines.find((l) => l.type === "export");
  const events = lines.flatMap((l) => (l.type === "event" ? [l] : []));
  const keys = new Map(
    lines.flatMap((l) => (l.type === "public_key" ? [[l.key_id, l.public_key] as const] : [])),
  );
  const checkpoints: AuditCheckpoint[] = lines.flatMap((l) =>
    l.type === "checkpoint" ? [{ ...l, at: Date.parse(l.at), public_key: keys.get(l.key_id) ?? "" }] : [],
  );
  const prunes: AuditPrune[] = lines.flatMap((l) =>
    l.type === "prune" ? [{ chain: l.chain, through_seq: l.through_seq, at: Date.parse(l.at) }] : [],
  );
  const period = header !== undefined && (header.since !== null || header.until !== null);
  const chains = [...new Set(events.map((e) => e.chain))].sort();
  const results: ChainVerification[] = [];
  for (const chain of chains) {
    const mine = events.filter((e) => e.chain === chain).sort((a, b) => a.seq - b.seq);
    async function* each(): AsyncGenerator<AuditEventView> {
      yield* mine;
    }
    const start = period && mine[0] ? { seq: mine[0].seq, prev: mine[0].prev_hash } : undefined;
    results.push(
      await verifyChain(chain, each(), checkpoints, prunes, publicKey ?? [...keys.values()], start),
    );
  }
  return { ok: results.every((r) => r.broken_at === null), chains: results };
}

async function verifyChain(
  chain: string,
  events: AsyncIterable<AuditEventView>,
  allCheckpoints: AuditCheckpoint[],
  allPrunes: AuditPrune[],
  publicKey: string | string[] | undefined,
  /** Where an export of a period starts this chain: its first event, trusted as the anchor. */
  start?: { seq: number; prev: string },
): Promise<ChainVerification> {
  const trusted =
    publicKey === undefined
      ? undefined
      : new Set((Array.isArray(publicKey) ? publicKey : [publicKey]).map(keyIdOf));
  const checkpoints = allCheckpoints
    .filter((c) => c.chain === chain)
    .sort((a, b) => Number(a.seq) - Number(b.seq));
  const prunedThrough = Math.max(
    0,
    ...allPrunes.filter((p) => p.chain === chain).map((p) => Number(p.through_seq)),
  );
  const result: ChainVerification = {
    chain,
    events: 0,
    first_seq: null,
    last_seq: null,
    broken_at: null,
    reason: null,
    checkpoints: checkpoints.length,
    last_checkpoint: null,
  };
  const broken = (seq: number, reason: string) => {
    if (result.broken_at === null) Object.assign(result, { broken_at: seq, reason });
  };
  // A checkpoint holds when it is signed by a trusted key; its hash must then match its event.
  const sound = new Map<number, AuditCheckpoint>();
  for (const c of checkpoints) {
    const seq = Number(c.seq);
    let keyId: string;
    try {
      keyId = keyIdOf(c.public_key);
    } catch {
      broken(seq, `the checkpoint at ${seq} carries no valid public key`);
      continue;
    }
    const message = checkpointMessage({ chain, seq, hash: c.hash, at: Number(c.at) });
    if (trusted && !trusted.has(keyId))
      broken(seq, `the checkpoint at ${seq} is signed by key ${keyId}, not by the gateway's key`);
    else if (!verify(null, message, createPublicKey(c.public_key), Buffer.from(c.signature, "base64")))
      broken(seq, `the checkpoint at ${seq} has a signature that does not hold`);
    else sound.set(seq, c);
  }
  let expected = start?.seq ?? prunedThrough + 1;
  let prev = start?.prev ?? GENESIS;
  if (!start && prunedThrough > 0) {
    const cut = sound.get(prunedThrough);
    if (!cut)
      broken(prunedThrough, `events up to ${prunedThrough} were pruned without a signed checkpoint there`);
    else prev = cut.hash;
  }
  for await (const e of events) {
    if (!start && e.seq <= prunedThrough) {
      broken(e.seq, `event ${e.seq} is still there though the chain was pruned through ${prunedThrough}`);
      continue;
    }
    result.events++;
    result.first_seq ??= e.seq;
    result.last_seq = e.seq;
    if (e.seq > expected) broken(expected, `event ${expected} is missing (the next one is ${e.seq})`);
    else if (e.seq < expected) broken(e.seq, `event ${e.seq} appears twice`);
    else if (e.prev_hash !== prev)
      broken(e.seq, `event ${e.seq} does not link to event ${e.seq - 1} (removed or inserted)`);
    else if (eventHash(e) !== e.hash)
      broken(e.seq, `event ${e.seq} was changed after it was written (its hash does not match)`);
    const c = sound.get(e.seq);
    if (c && c.hash !== e.hash)
      broken(e.seq, `event ${e.seq} differs from the signed checkpoint at ${e.seq}`);
    expected = e.seq + 1;
    prev = e.hash;
  }
  const lastCp = checkpoints.filter((c) => sound.has(Number(c.seq))).at(-1);
  if (lastCp) {
    const seq = Number(lastCp.seq);
    if (seq >= expected)
      broken(expected, `events from ${expected} to ${seq} are missing (a signed checkpoint covers ${seq})`);
    result.last_checkpoint = {
      seq,
      hash: lastCp.hash,
      at: new Date(Number(lastCp.at)).toISOString(),
      key_id: lastCp.key_id,
    };
  }
  return result;
}
