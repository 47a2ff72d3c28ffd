import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../src");

/** Every module `entry` imports, transitively, within the SDK, and every import from outside it. */
function importsOf(entry: string): { files: Set<string>; outside: Set<string> } {
  const files = new Set<string>();
  const outside = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, "utf8");
    for (const [, spec] of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/g)) {
      if (spec!.startsWith(".")) visit(resolve(dirname(file), spec!));
      else outside.add(spec!);
    }
  };
  visit(resolve(SRC, entry));
  return { files, outside };
}

describe("the SDK's browser entry (@beta9/sdk/browser)", () => {
  it("imports nothing of Node: no undici, no node:* module, only the wire types", () => {
    const { files, outside } = importsOf("browser.ts");
    expect(files.has(resolve(SRC, "transport.ts"))).toBe(true);
    expect(files.has(resolve(SRC, "transport-node.ts"))).toBe(false);
    expect([...outside]).toEqual(["@beta9/protocol"]);
  });

  it("the node entry still brings the patient fetch (undici) and the CA file", () => {
    const { files, outside } = importsOf("index.ts");
    expect(files.has(resolve(SRC, "transport-node.ts"))).toBe(true);
    expect(outside.has("undici")).toBe(true);
  });
});
