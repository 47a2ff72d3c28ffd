import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { delimiter, isAbsolute, join } from "node:path";

/** The absolute path of an executable: a configured path as is, else the first hit on PATH. */
export async function findExecutable(name: string, pathEnv: string | undefined): Promise<string | null> {
  const candidates =
    isAbsolute(name) || name.includes("/")
      ? [name]
      : (pathEnv ?? "")
          .split(delimiter)
          .filter((dir) => dir !== "")
          .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}
