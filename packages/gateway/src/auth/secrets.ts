import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Secrets are 32 random bytes behind a prefix that says what they are. They are high-entropy, so a
 * plain SHA-256 is the right hash: nothing to brute-force, and lookup by hash stays an index hit.
 */
export function newSecret(prefix: string): string {
  return prefix + randomBytes(32).toString("base64url");
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** The fork's agents keep their join token as machine credential; bind it to the machine id. */
export function hashBoundSecret(secret: string, machineId: string): string {
  return createHash("sha256").update(secret).update("\0").update(machineId).digest("hex");
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}

export function newId(prefix: string): string {
  return prefix + randomBytes(8).toString("hex");
}
