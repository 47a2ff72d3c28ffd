import canonicalize from "canonicalize";
import type { AuditEventView, AuditExportLine, AuditVerification, ChainVerification } from "./audit.ts";

/**
 * The audit log's hash chain and checkpoints, one implementation for the gateway that writes them
 * and for whoever checks an export offline (`b9 audit verify --file`), so the two cannot drift.
 * WebCrypto (global in Node and browsers), not a Node import: protocol runs anywhere.
 */

/** The first event's prev_hash: no predecessor. */
export const GENESIS = "0".repeat(64);

const hex = (b: ArrayBuffer) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
// Uint8Array<ArrayBuffer>: what WebCrypto takes under the DOM types too (the dashboard type-checks this file).
const sha256 = async (data: Uint8Array<ArrayBuffer> | string) =>
  hex(
    await crypto.subtle.digest("SHA-256", typeof data === "string" ? new TextEncoder().encode(data) : data),
  );

/**
 * An event's hash: sha256 over the RFC 8785 canonical JSON of the event as shown (every field but
 * `hash`, `prev_hash` included), so an export can be checked with any RFC 8785 library.
 */
export function auditEventHash(e: Omit<AuditEventView, "hash">): Promise<string> {
  return sha256(auditEventForm(e));
}

/** The text an event's hash is taken over: its RFC 8785 form, every field but `hash`. */
export function auditEventForm(e: Omit<AuditEventView, "hash">): string {
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
  return form;
}

/** What a checkpoint's signature covers: the RFC 8785 form of {chain, seq, hash, at (epoch ms)}. */
export function checkpointMessage(c: { chain: string; seq: number; hash: string; at: number }): Uint8Array {
  return new TextEncoder().encode(canonicalize({ chain: c.chain, seq: c.seq, hash: c.hash, at: c.at }) ?? "");
}

function spkiDer(pem: string): Uint8Array<ArrayBuffer> {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]+=*$/.test(body)) throw new Error("not a PEM public key");
  return Uint8Array.from(atob(body), (ch) => ch.charCodeAt(0));
}

/** A public key's id: the first 16 hex digits of the sha256 of its DER (SPKI) form. */
export async function keyIdOf(publicKeyPem: string): Promise<string> {
  return (await sha256(spkiDer(publicKeyPem))).slice(0, 16);
}

async function signatureHolds(
  publicKeyPem: string,
  message: Uint8Array,
  signature: string,
): Promise<boolean> {
  const key = await crypto.subtle.importKey("spki", spkiDer(publicKeyPem), { name: "Ed25519" }, false, [
    "verify",
  ]);
  const sig = Uint8Array.from(atob(signature), (ch) => ch.charCodeAt(0));
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, message as Uint8Array<ArrayBuffer>);
}

/** A checkpoint as verification needs it (`at` in epoch ms, the signer's key as SPKI PEM). */
export interface CheckpointFacts {
  chain: string;
  seq: number;
  hash: string;
  at: number;
  signature: string;
  key_id: string;
  public_key: string;
}

/** Retention removed `chain`'s events up to `through_seq`. */
export interface PruneFacts {
  chain: string;
  through_seq: number;
}

/**
 * An export's lines, read back: the same checks with no database. An export of a period starts
 * within its chains: each chain is checked from its first exported event on. Checkpoints count only
 * when signed by one of `publicKey` (default: the keys the export carries).
 */
export async function verifyAuditExport(
  lines: AuditExportLine[],
  publicKey?: string | string[],
): Promise<AuditVerification> {
  const header = lines.find((l) => l.type === "export");
  const events = lines.flatMap((l) => (l.type === "event" ? [l] : []));
  const keys = new Map(
    lines.flatMap((l) => (l.type === "public_key" ? [[l.key_id, l.public_key] as const] : [])),
  );
  const checkpoints: CheckpointFacts[] = lines.flatMap((l) =>
    l.type === "checkpoint" ? [{ ...l, at: Date.parse(l.at), public_key: keys.get(l.key_id) ?? "" }] : [],
  );
  const prunes: PruneFacts[] = lines.flatMap((l) =>
    l.type === "prune" ? [{ chain: l.chain, through_seq: l.through_seq }] : [],
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
      await verifyAuditChain(chain, each(), checkpoints, prunes, publicKey ?? [...keys.values()], start),
    );
  }
  return { ok: results.every((r) => r.broken_at === null), chains: results };
}

/** One chain's events in sequence order, checked against its checkpoints and prunes. */
export async function verifyAuditChain(
  chain: string,
  events: AsyncIterable<AuditEventView>,
  allCheckpoints: CheckpointFacts[],
  allPrunes: PruneFacts[],
  publicKey: string | string[] | undefined,
  /** Where an export of a period starts this chain: its first event, trusted as the anchor. */
  start?: { seq: number; prev: string },
): Promise<ChainVerification> {
  const trusted =
    publicKey === undefined
      ? undefined
      : new Set(await Promise.all((Array.isArray(publicKey) ? publicKey : [publicKey]).map(keyIdOf)));
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
  const sound = new Map<number, CheckpointFacts>();
  for (const c of checkpoints) {
    const seq = Number(c.seq);
    let keyId: string;
    try {
      keyId = await keyIdOf(c.public_key);
    } catch {
      broken(seq, `the checkpoint at ${seq} carries no valid public key`);
      continue;
    }
    const message = checkpointMessage({ chain, seq, hash: c.hash, at: Number(c.at) });
    if (trusted && !trusted.has(keyId))
      broken(seq, `the checkpoint at ${seq} is signed by key ${keyId}, not by the gateway's key`);
    else if (!(await signatureHolds(c.public_key, message, c.signature).catch(() => false)))
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
    else if ((await auditEventHash(e)) !== e.hash)
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
