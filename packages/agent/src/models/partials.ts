import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { readInfo } from "./download.ts";

/*
 * Unfinished downloads (NAME.partial beside NAME.partial.json) are kept so a pull can resume them,
 * but not forever and not without bound: a stream that broke off, or a URL never pulled again,
 * would otherwise keep its bytes on the machine's disk for good.
 */

export interface PartialsOptions {
  /** The store's downloads folder. */
  dir: string;
  /** Total bytes the partial files may take; the oldest (by last write) go first when over. */
  maxBytes: number;
  /** Destinations being downloaded now (without ".partial"): never removed. */
  active: ReadonlySet<string>;
  /** Remove partial files not written for this long. */
  maxAgeMs?: number | undefined;
  /** With `url`: remove this model name's partial files from any other URL (never to be resumed). */
  model?: string | undefined;
  url?: string | undefined;
}

interface Partial {
  dest: string;
  bytes: number;
  mtimeMs: number;
}

/** Apply the rules of `opts`; returns the destinations whose partial files were removed. */
export async function sweepPartials(opts: PartialsOptions): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(opts.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const removed: string[] = [];
  const remove = async (dest: string) => {
    await rm(`${dest}.partial`, { force: true });
    await rm(`${dest}.partial.json`, { force: true });
    removed.push(dest);
  };
  const partials: Partial[] = [];
  for (const name of names) {
    const m = /^(.*)\.partial(\.json)?$/.exec(name);
    if (!m) continue;
    const dest = join(opts.dir, m[1]!);
    if (opts.active.has(dest) || partials.some((p) => p.dest === dest) || removed.includes(dest)) continue;
    const st = await stat(`${dest}.partial`).catch(() => undefined);
    // Validators without bytes, or bytes without a record of where they came from: nothing to resume.
    const info = await readInfo(`${dest}.partial.json`);
    if (!st || !info) {
      await remove(dest);
      continue;
    }
    const stale = opts.maxAgeMs !== undefined && Date.now() - st.mtimeMs > opts.maxAgeMs;
    const replaced = opts.model !== undefined && info.model === opts.model && info.url !== opts.url;
    if (stale || replaced) await remove(dest);
    else partials.push({ dest, bytes: st.size, mtimeMs: st.mtimeMs });
  }
  // Active downloads count against the quota but are never the ones removed.
  let total = partials.reduce((sum, p) => sum + p.bytes, 0);
  for (const dest of opts.active) total += (await stat(`${dest}.partial`).catch(() => undefined))?.size ?? 0;
  partials.sort((a, b) => a.mtimeMs - b.mtimeMs);
  for (const p of partials) {
    if (total <= opts.maxBytes) break;
    await remove(p.dest);
    total -= p.bytes;
  }
  return removed;
}
