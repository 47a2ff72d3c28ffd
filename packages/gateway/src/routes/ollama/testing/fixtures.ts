import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { expect } from "vitest";

/** Fixtures under packages/gateway/testdata/ollama (see SOURCES.md there). */
const DIR = resolve(import.meta.dirname, "../../../../testdata/ollama");

export const fixtureText = (name: string): string => readFileSync(resolve(DIR, name), "utf8");
export const fixture = <T = Record<string, unknown>>(name: string): T => JSON.parse(fixtureText(name)) as T;
export const fixtureLines = (name: string): Record<string, unknown>[] =>
  fixtureText(name)
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The recorded bytes, cut into pieces of `size` bytes as a network would (across lines and characters). */
export async function* inPieces(text: string, size = 7): AsyncGenerator<Buffer> {
  const bytes = Buffer.from(text, "utf8");
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const kind = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

/**
 * `ours` has every field of Ollama's real answer `theirs` (but `omit`), each of the same JSON type; the
 * objects named in `deep` are compared the same way. Go's `null` for an empty list or object matches
 * either. Fields we add are allowed: clients ignore what they do not know.
 */
export function expectShape(
  ours: unknown,
  theirs: Record<string, unknown>,
  opts: { omit?: string[]; deep?: string[] } = {},
): void {
  const o = ours as Record<string, unknown>;
  for (const [key, value] of Object.entries(theirs)) {
    if (opts.omit?.includes(key)) continue;
    expect(o, `field ${key}`).toHaveProperty([key]);
    const a = kind(o[key]);
    const b = kind(value);
    const nullable = (x: string, y: string) => x === "null" && (y === "array" || y === "object");
    if (a !== b && !nullable(a, b) && !nullable(b, a))
      expect.fail(`field ${key}: ours is ${a}, Ollama's is ${b}`);
    if (opts.deep?.includes(key) && b === "object")
      expectShape(o[key], value as Record<string, unknown>, { omit: opts.omit ?? [] });
  }
}
