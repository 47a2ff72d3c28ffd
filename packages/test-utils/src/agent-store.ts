import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

/*
 * An agent's model store as its machine's owner sees it on disk (beside the agent's config): what a
 * test asserts was, or was not, fetched, converted or built there.
 */

/** The store's folder of an agent whose config is at `configPath`. */
export const agentStoreDir = (configPath: string): string => join(dirname(configPath), "models");

/** The store's record of model `name` (its JSON), or undefined when there is none. */
// biome-ignore lint/suspicious/noExplicitAny: a record is asserted on field by field, as the store wrote it.
export function storedRecord(configPath: string, name: string): any {
  const file = join(agentStoreDir(configPath), "models", `${name}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
}

/** Whether the agent built llama.cpp's quantize tool, which it does before its first quantization. */
export function builtQuantizeTool(configPath: string): boolean {
  const tools = join(agentStoreDir(configPath), "tools");
  return existsSync(tools) && readdirSync(tools).some((d) => d.startsWith("llama-quantize"));
}
