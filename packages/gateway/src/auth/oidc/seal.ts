import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

/*
 * The provider's refresh token is kept sealed under the CLI's own refresh token (AES-256-GCM, the key
 * its SHA-256): only who presents that token can open it, so the store alone gives nobody a way in,
 * and the gateway needs no key of its own for it.
 */

function keyOf(secret: string): Buffer {
  return createHash("sha256").update("b9-seal\0").update(secret).digest();
}

export function seal(plain: string, secret: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", keyOf(secret), iv);
  const body = Buffer.concat([c.update(plain, "utf8"), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString("base64url");
}

/** The sealed text, or undefined when `secret` is not the one it was sealed under. */
export function unseal(sealed: string, secret: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, "base64url");
    const d = createDecipheriv("aes-256-gcm", keyOf(secret), raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
  } catch {
    return undefined;
  }
}
