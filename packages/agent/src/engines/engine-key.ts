import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/*
 * The secret an engine the agent starts accepts requests with: new for every start, given to the
 * engine in its environment (readable only by this user and root, unlike a command line in /proc),
 * never logged, and sent by the agent as `Authorization: Bearer …`.
 */

/** The environment variable the builtin engine (and the SGLang launcher) read the key from, then drop. */
export const ENGINE_KEY_ENV = "BETA9_ENGINE_API_KEY";

export class EngineKey {
  readonly #value: string;

  constructor(value = randomBytes(32).toString("base64url")) {
    this.#value = value;
  }

  /** For the engine's environment only. */
  reveal(): string {
    return this.#value;
  }

  /** The headers that authenticate the agent's requests to the engine. */
  headers(): Record<string, string> {
    return { authorization: `Bearer ${this.#value}` };
  }

  /** A line of the engine's output with the key, or a hint of it (llama-server prints its last 4 characters), masked. */
  redact(line: string): string {
    return line.replaceAll(this.#value, "[redacted]").replace(/(api_keys?:\s*)\*+\S*/gi, "$1[redacted]");
  }

  toJSON(): string {
    return "[redacted]";
  }
}

/** Whether `token` is `expected`, in constant time. */
export function sameKey(token: string | undefined, expected: string): boolean {
  if (token === undefined) return false;
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(token), digest(expected));
}
