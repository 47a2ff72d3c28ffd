import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keyIdOf } from "@beta9/protocol";

export const SIGNING_KEY_FILE = "audit-signing.key";
export const HMAC_KEY_FILE = "audit-hmac.key";
export const CHAIN_FILE = "audit-chain";

export interface AuditKeys {
  signing: KeyObject;
  /** SPKI PEM of the signing key: what an export carries and verify checks checkpoints with. */
  publicKey: string;
  keyId: string;
  hmacKey: Buffer;
  /** This replica's chain: kept in the data dir, so a restart goes on with the same chain. */
  chain: string;
}

/**
 * The audit keys and chain id in the data dir: created (0600) on the first start; `hasEvents` says
 * whether the store already holds events of this data dir's chain (or, without a chain file, any):
 * then a missing key is a start error, not a silent new key that would leave the old checkpoints
 * unverifiable, and so is a corrupt one.
 */
export async function loadAuditKeys(
  dataDir: string,
  newChain: () => string,
  hasEvents: (chain: string | undefined) => Promise<boolean>,
): Promise<AuditKeys> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const signingFile = join(dataDir, SIGNING_KEY_FILE);
  const hmacFile = join(dataDir, HMAC_KEY_FILE);
  const chainFile = join(dataDir, CHAIN_FILE);
  const chain = existsSync(chainFile) ? readFileSync(chainFile, "utf8").trim() : undefined;
  if (!existsSync(signingFile) || !existsSync(hmacFile)) {
    const missing = existsSync(signingFile) ? hmacFile : signingFile;
    if (await hasEvents(chain)) {
      throw new Error(
        `the audit log already has events but its key ${missing} is missing: restore it (with the rest of the data dir) from your backup; the events already written are still checked by \`b9 audit verify\` with the public key of an earlier export`,
      );
    }
    if (!existsSync(signingFile)) {
      const { privateKey } = generateKeyPairSync("ed25519");
      writePrivate(signingFile, privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    }
    if (!existsSync(hmacFile)) writePrivate(hmacFile, `${randomBytes(32).toString("hex")}\n`);
  }
  let signing: KeyObject;
  try {
    signing = createPrivateKey(readFileSync(signingFile));
    if (signing.asymmetricKeyType !== "ed25519")
      throw new Error(`a ${signing.asymmetricKeyType} key, not Ed25519`);
  } catch (err) {
    throw new Error(
      `the audit signing key ${signingFile} is corrupt (${(err as Error).message}): restore it from your backup of the data dir; only with no audit events yet may it be removed to make a new one`,
    );
  }
  const hmacHex = readFileSync(hmacFile, "utf8").trim();
  if (!/^[0-9a-f]{64}$/.test(hmacHex)) {
    throw new Error(
      `the audit HMAC key ${hmacFile} is corrupt (not 64 hex digits): restore it from your backup of the data dir; only with no audit events yet may it be removed to make a new one`,
    );
  }
  const id = chain ?? newChain();
  if (!chain) writePrivate(chainFile, `${id}\n`);
  const publicKey = createPublicKey(signing).export({ type: "spki", format: "pem" }).toString();
  return {
    signing,
    publicKey,
    keyId: await keyIdOf(publicKey),
    hmacKey: Buffer.from(hmacHex, "hex"),
    chain: id,
  };
}

function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600, flag: "wx" });
  chmodSync(file, 0o600);
}
