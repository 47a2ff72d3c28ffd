import { readFileSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { EngineName } from "../engines/engine.ts";

/** A model this machine's owner started by hand, as asked: what a restarted agent starts again. */
export interface ServedEntry {
  model: string;
  /** The engine named at the start (absent: chosen for the hardware again). */
  engine?: EngineName | undefined;
  context_size?: number | undefined;
}

/**
 * The models this machine's owner started by hand, in a small JSON file beside its config (`served.json`), so that an
 * agent that died (SIGKILL, a crash, a reboot) or was restarted serves them again without anyone
 * asking. Written whole to a temporary file and renamed: a crash mid-write leaves the old list.
 */
export class ServedList {
  readonly #path: string;
  #entries: ServedEntry[];
  #writing: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.#path = path;
    this.#entries = readEntries(path);
  }

  get path(): string {
    return this.#path;
  }

  entries(): readonly ServedEntry[] {
    return this.#entries;
  }

  /** Serving `e` from now on (replaces an entry of the same model). */
  add(e: ServedEntry): Promise<void> {
    this.#entries = [...this.#entries.filter((x) => x.model !== e.model), e];
    return this.#save();
  }

  /** Not serving `model` any more (undefined: nothing). */
  remove(model?: string): Promise<void> {
    this.#entries = model === undefined ? [] : this.#entries.filter((x) => x.model !== model);
    return this.#save();
  }

  #save(): Promise<void> {
    const text = `${JSON.stringify({ served: this.#entries }, null, 2)}\n`;
    // One write at a time, each the whole list as it is then: the last one wins.
    this.#writing = this.#writing.then(async () => {
      await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
      const tmp = `${this.#path}.${process.pid}.tmp`;
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.#path);
    });
    return this.#writing;
  }
}

/** The list in `path`; none when it is missing or unreadable (a damaged file restores nothing, never throws). */
function readEntries(path: string): ServedEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return [];
  }
  const list = (parsed as { served?: unknown } | null)?.served;
  if (!Array.isArray(list)) return [];
  return list.flatMap((v): ServedEntry[] => {
    const e = v as Record<string, unknown>;
    if (!e || typeof e.model !== "string" || e.model === "") return [];
    return [
      {
        model: e.model,
        engine: typeof e.engine === "string" ? (e.engine as EngineName) : undefined,
        context_size: typeof e.context_size === "number" ? e.context_size : undefined,
      },
    ];
  });
}
