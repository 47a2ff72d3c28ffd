import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";

/** SmolLM2-135M-Instruct Q4_1, fetched by scripts/fetch-test-model (scripts/test runs it). */
export const TEST_MODEL = {
  file: "SmolLM2-135M-Instruct.Q4_1.gguf",
  sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
  bytes: 98_362_432,
  architecture: "llama",
  license: "Apache-2.0",
};

export function testModelPath(): string {
  const path =
    process.env.BETA9_TEST_MODEL ?? resolve(import.meta.dirname, "../../../.cache/models", TEST_MODEL.file);
  if (!existsSync(path)) {
    throw new Error(
      `the test model is missing at ${path}: run scripts/fetch-test-model (npm test does it for you)`,
    );
  }
  return path;
}

/**
 * The test model whose general.architecture says `architecture` (five letters, like "llama"): a
 * well-formed GGUF of a model llama.cpp cannot load. Written as `dir`/`architecture`.gguf; returns the path.
 */
export async function testModelAs(architecture: string, dir: string): Promise<string> {
  const bytes = await readFile(testModelPath());
  const at = bytes.indexOf("general.architecture") + "general.architecture".length + 12;
  if (bytes.subarray(at, at + 5).toString() !== "llama" || architecture.length !== 5)
    throw new Error(`cannot rename the test model's architecture to ${architecture}`);
  bytes.write(architecture, at);
  const path = join(dir, `${architecture}.gguf`);
  await writeFile(path, bytes);
  return path;
}
