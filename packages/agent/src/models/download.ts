import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { LazyDispatcher, loadUndici } from "@beta9/http/undici-lazy";
import type { Response, fetch as undiciFetch } from "undici";
import { ModelError } from "./model-error.ts";
import { isSourceDenied } from "./source-policy.ts";

/*
 * Download one file over HTTP(S) into `dest`, the way a multi-gigabyte model needs it: into
 * `dest.partial`, resumed with Range after any interruption, hashed with sha256 while it streams
 * (the hash continues over the bytes already on disk), and renamed into place only when complete
 * and verified. Cancelling keeps the partial file so the next pull picks up where this one stopped,
 * when the server can resume it (Range); one that cannot leaves nothing behind.
 *
 * The HTTP client is undici's own (pinned), never Node's bundled fetch: the bundled undici 7.29.1 throws
 * an uncatchable assertion (undici #5360) when a server closes the connection while a slow disk has
 * the body paused, which ended the whole agent.
 */

export interface DownloadProgress {
  completed: number;
  /** Unknown when the server sends no length. */
  total: number | undefined;
}

export interface DownloadOptions {
  /** The file's sha256 (64 hex digits). A mismatch deletes the partial file and throws "checksum_mismatch". */
  expectedSha256?: string | undefined;
  /** Refuse files larger than this ("download_too_large"). */
  maxBytes?: number | undefined;
  /** Kept beside the partial file: the model name it is for, so a pull of that name from elsewhere can drop it. */
  label?: string | undefined;
  /** Where connections come from; the store passes one that refuses addresses a source may not reach. */
  dispatcher?: LazyDispatcher | undefined;
  /** Sent with every request (a hub's token); fetch drops Authorization on a redirect to another origin. */
  headers?: Readonly<Record<string, string>> | undefined;
  onProgress?: ((progress: DownloadProgress) => void) | undefined;
  /** Cancels the download; the partial file stays for a later resume. Throws the signal's reason. */
  signal?: AbortSignal | undefined;
  /** From the request until the response headers: covers DNS, connect, TLS and a server that hangs. */
  headersTimeoutMs?: number | undefined;
  /** Longest silence in the body before the connection counts as dead (and the transfer is resumed). */
  stallTimeoutMs?: number | undefined;
  /** Further attempts after an interruption, timeout, 408, 429 or 5xx; each resumes the partial file. */
  retries?: number | undefined;
  /** First wait between attempts; it doubles each time (capped at 30 s) with jitter. */
  retryDelayMs?: number | undefined;
  /** Least time between two progress callbacks (the first and the last are always sent). */
  progressIntervalMs?: number | undefined;
  /** Refuse early when the disk cannot hold the rest of the file ("insufficient_disk"). */
  checkDiskSpace?: boolean | undefined;
  fetch?: typeof undiciFetch | undefined;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  size: number;
  /** Whether bytes from an earlier attempt or an earlier pull were kept. */
  resumed: boolean;
  attempts: number;
}

export const DOWNLOAD_DEFAULTS = {
  headersTimeoutMs: 30_000,
  stallTimeoutMs: 60_000,
  retries: 5,
  retryDelayMs: 1000,
  progressIntervalMs: 250,
};
const MAX_RETRY_DELAY_MS = 30_000;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What the server said about the file, kept beside the partial so a resume can check it is the same file. */
interface PartialInfo {
  url: string;
  etag?: string | undefined;
  last_modified?: string | undefined;
  total?: number | undefined;
  /** The server answers Range requests: the partial file can be resumed. */
  ranges?: boolean | undefined;
  /** The model name the download is for (DownloadOptions.label). */
  model?: string | undefined;
}

/** For downloads with no dispatcher of their own: undici's, not the global one Node's fetch may have installed. */
const plainDispatcher = new LazyDispatcher((undici) => new undici.Agent());

export function partialPath(dest: string): string {
  return `${dest}.partial`;
}

/** Beside the partial file: the URL and validators (ETag, Last-Modified) a resume must match. */
export function partialInfoPath(dest: string): string {
  return `${dest}.partial.json`;
}

/** Failures worth another attempt: the partial file stays and the next attempt resumes it. */
const transient = new WeakSet<Error>();
function retryable<E extends Error>(err: E): E {
  transient.add(err);
  return err;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
}

export async function readInfo(path: string): Promise<PartialInfo | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as PartialInfo;
    return typeof parsed?.url === "string" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

async function hashFile(path: string, hash: Hash, bytes: number, signal?: AbortSignal): Promise<void> {
  if (bytes === 0) return;
  const stream = createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 1024 * 1024, signal });
  for await (const chunk of stream) hash.update(chunk as Buffer);
}

/** Content-Range "bytes 100-199/200" → start 100, total 200; a 416 sends "bytes * / 200" (unspaced): total only. */
function parseContentRange(header: string | null): { start: number | undefined; total: number | undefined } {
  const m = header ? /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(header.trim()) : null;
  if (!m) return { start: undefined, total: undefined };
  return {
    start: m[1] === undefined ? undefined : Number(m[1]),
    total: m[2] === "*" || m[2] === undefined ? undefined : Number(m[2]),
  };
}

function lengthOf(res: Response): number | undefined {
  const header = res.headers.get("content-length");
  if (header === null || !/^\d+$/.test(header)) return undefined;
  return Number(header);
}

/** Download `url` into `dest` (atomically: it appears only complete and verified). */
export async function download(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const expected = options.expectedSha256?.toLowerCase();
  if (expected !== undefined && !SHA256_HEX.test(expected)) {
    throw new ModelError("invalid_checksum", "the expected sha256 must be 64 hexadecimal digits");
  }
  const retries = options.retries ?? DOWNLOAD_DEFAULTS.retries;
  const baseDelay = options.retryDelayMs ?? DOWNLOAD_DEFAULTS.retryDelayMs;
  const signal = options.signal;
  await mkdir(dirname(dest), { recursive: true });

  let attempts = 0;
  for (;;) {
    signal?.throwIfAborted();
    attempts++;
    try {
      const result = await attempt(url, dest, { ...options, expectedSha256: expected });
      return { ...result, attempts };
    } catch (err) {
      if (signal?.aborted) {
        await discardUnresumable(dest);
        throw signal.reason;
      }
      if (!(err instanceof Error) || !transient.has(err) || attempts > retries) {
        await discardUnresumable(dest);
        throw err;
      }
      const delay = Math.min(MAX_RETRY_DELAY_MS, baseDelay * 2 ** (attempts - 1));
      try {
        await sleep(delay / 2 + Math.random() * (delay / 2), undefined, { signal });
      } catch {
        await discardUnresumable(dest);
        throw signal?.reason ?? err;
      }
    }
  }
}

async function attempt(
  url: string,
  dest: string,
  options: DownloadOptions,
): Promise<Omit<DownloadResult, "attempts">> {
  const partial = partialPath(dest);
  const infoFile = partialInfoPath(dest);
  const headersTimeoutMs = options.headersTimeoutMs ?? DOWNLOAD_DEFAULTS.headersTimeoutMs;
  const stallTimeoutMs = options.stallTimeoutMs ?? DOWNLOAD_DEFAULTS.stallTimeoutMs;
  const fetchImpl = options.fetch ?? (await loadUndici()).fetch;
  const dispatcher = await (options.dispatcher ?? plainDispatcher).get();
  const { signal, maxBytes } = options;

  let offset = await sizeOf(partial);
  let info = offset > 0 ? await readInfo(infoFile) : undefined;
  if (offset > 0 && info?.url !== url) {
    // Bytes of unknown origin: never splice them onto this file.
    offset = 0;
    info = undefined;
  }

  // Our own controller, so timeouts can cut the connection; the caller's signal aborts it too.
  const controller = new AbortController();
  let timedOut: "headers" | "stall" | undefined;
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const arm = (kind: "headers" | "stall", ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = kind;
      controller.abort(new Error(`no ${kind === "headers" ? "response" : "data"} for ${ms} ms`));
    }, ms);
  };

  try {
    for (let restarts = 0; ; restarts++) {
      if (restarts > 2) throw retryable(new ModelError("download_failed", `${url} keeps changing under us`));
      // Hash the kept bytes before asking: a server should not wait on us with its body unread.
      let hash = createHash("sha256");
      await hashFile(partial, hash, offset, signal);
      const headers: Record<string, string> = { ...options.headers, "accept-encoding": "identity" };
      if (offset > 0) {
        headers.range = `bytes=${offset}-`;
        // Only resume if the file is still the one we started: a changed file answers 200 in full.
        const validator = info?.etag && !info.etag.startsWith("W/") ? info.etag : info?.last_modified;
        if (validator) headers["if-range"] = validator;
      }

      arm("headers", headersTimeoutMs);
      let res: Response;
      try {
        res = await fetchImpl(url, { headers, signal: controller.signal, redirect: "follow", dispatcher });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (isSourceDenied(err)) {
          // Not retried: the address will not change its kind. Said plainly here, for the machine's log only.
          throw new ModelError("source_unreachable", `${url} leads to an address this source may not reach`, {
            cause: err,
          });
        }
        if (timedOut) {
          throw retryable(
            new ModelError("download_timeout", `${url} sent no response within ${headersTimeoutMs} ms`),
          );
        }
        throw retryable(
          new ModelError("download_failed", `cannot reach ${url}: ${describe(err)}`, { cause: err }),
        );
      }
      clearTimeout(timer);

      let total: number | undefined;
      if (res.status === 416) {
        await res.body?.cancel();
        const { total: size } = parseContentRange(res.headers.get("content-range"));
        if (offset > 0 && size === offset) {
          // The partial file already holds every byte; only the rename was missing.
          return await finish(partial, infoFile, dest, offset, hash, options, true);
        }
        offset = 0;
        info = undefined;
        continue;
      }
      if (res.status === 206) {
        const range = parseContentRange(res.headers.get("content-range"));
        if (range.start !== offset) {
          await res.body?.cancel();
          offset = 0;
          info = undefined;
          continue;
        }
        total = range.total ?? info?.total;
      } else if (res.status === 200) {
        // The server ignored Range, or the file changed (If-Range): start over from byte 0.
        if (offset > 0) hash = createHash("sha256");
        offset = 0;
        total = lengthOf(res);
      } else {
        await res.body?.cancel();
        const why = `${url} answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
        const err = new ModelError("download_failed", why);
        throw res.status === 408 || res.status === 429 || res.status >= 500 ? retryable(err) : err;
      }

      const encoding = res.headers.get("content-encoding");
      if (encoding && encoding !== "identity") {
        await res.body?.cancel();
        throw new ModelError(
          "download_failed",
          `${url} sent a ${encoding}-encoded body; byte ranges would not line up`,
        );
      }
      if (total !== undefined && maxBytes !== undefined && total > maxBytes) {
        await res.body?.cancel();
        await discard(partial, infoFile);
        throw new ModelError("download_too_large", `${url} is ${total} bytes, over the limit of ${maxBytes}`);
      }
      // A body of unknown length may not fill the disk: it stops where the disk would be full.
      let room = Number.POSITIVE_INFINITY;
      if (options.checkDiskSpace !== false) {
        const fs = await statfs(dirname(dest));
        const free = fs.bavail * fs.bsize;
        room = offset + free;
        if (total !== undefined && total - offset > free) {
          await res.body?.cancel();
          throw new ModelError(
            "insufficient_disk",
            `${url} needs ${total - offset} more bytes but ${dirname(dest)} has ${free} free`,
          );
        }
      }

      info = {
        url,
        etag: res.headers.get("etag") ?? info?.etag ?? undefined,
        last_modified: res.headers.get("last-modified") ?? info?.last_modified ?? undefined,
        total,
        ranges: res.status === 206 || /\bbytes\b/i.test(res.headers.get("accept-ranges") ?? ""),
        model: options.label,
      };
      await writeFile(infoFile, JSON.stringify(info));

      const fh = await open(partial, offset > 0 ? "r+" : "w");
      let done = offset;
      // Chunks arrive at 16–64 KiB: written a MiB at a time (one writev), not one write each.
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let written = offset;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const chunks = pending;
        const at = written;
        pending = [];
        written += pendingBytes;
        pendingBytes = 0;
        await fh.writev(chunks, at);
      };
      let lastReport = 0;
      const report = (force: boolean) => {
        const now = Date.now();
        if (!options.onProgress) return;
        if (!force && now - lastReport < (options.progressIntervalMs ?? DOWNLOAD_DEFAULTS.progressIntervalMs))
          return;
        lastReport = now;
        options.onProgress({ completed: done, total });
      };
      report(true);
      try {
        arm("stall", stallTimeoutMs);
        if (res.body) {
          for await (const chunk of res.body) {
            arm("stall", stallTimeoutMs);
            if (done + chunk.byteLength > room) {
              throw new ModelError(
                "insufficient_disk",
                `${url} sent more than ${dirname(dest)} has room for`,
              );
            }
            if (maxBytes !== undefined && done + chunk.byteLength > maxBytes) {
              throw new ModelError(
                "download_too_large",
                `${url} is larger than the limit of ${maxBytes} bytes`,
              );
            }
            if (total !== undefined && done + chunk.byteLength > total) {
              throw new ModelError(
                "download_failed",
                `${url} sent more than the ${total} bytes it announced`,
              );
            }
            hash.update(chunk);
            pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            pendingBytes += chunk.byteLength;
            done += chunk.byteLength;
            if (pendingBytes >= WRITE_BATCH_BYTES) await flush();
            report(false);
            // Every byte announced is here: do not wait on how the server ends the connection.
            if (total !== undefined && done === total) break;
          }
        }
        await flush();
        await fh.datasync();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof ModelError) {
          if (err.code === "download_too_large" || err.code === "insufficient_disk")
            await discard(partial, infoFile);
          throw err;
        }
        if (timedOut === "stall") {
          throw retryable(
            new ModelError("download_timeout", `${url} stalled for ${stallTimeoutMs} ms after ${done} bytes`),
          );
        }
        throw retryable(
          new ModelError("download_failed", `${url} broke off after ${done} bytes: ${describe(err)}`, {
            cause: err,
          }),
        );
      } finally {
        clearTimeout(timer);
        // What arrived whole before a break is kept for a resume (unless the file was discarded).
        await flush().catch(() => {});
        await fh.close();
      }
      if (total !== undefined && done < total) {
        throw retryable(new ModelError("download_failed", `${url} ended after ${done} of ${total} bytes`));
      }
      report(true);
      return await finish(partial, infoFile, dest, done, hash, options, offset > 0);
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** How much a download holds in memory before it writes: one writev per MiB. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** A partial file the server cannot resume (no Range) is of no use to a later pull. */
async function discardUnresumable(dest: string): Promise<void> {
  const info = await readInfo(partialInfoPath(dest));
  if (info?.ranges !== true) await discard(partialPath(dest), partialInfoPath(dest));
}

async function discard(partial: string, infoFile: string): Promise<void> {
  await rm(partial, { force: true });
  await rm(infoFile, { force: true });
}

/** Verify the complete partial file and rename it into place. */
async function finish(
  partial: string,
  infoFile: string,
  dest: string,
  size: number,
  hash: Hash,
  options: DownloadOptions,
  resumed: boolean,
): Promise<Omit<DownloadResult, "attempts">> {
  const sha256 = hash.digest("hex");
  if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256) {
    await discard(partial, infoFile);
    throw new ModelError(
      "checksum_mismatch",
      `the downloaded file's sha256 is ${sha256}, not the expected ${options.expectedSha256}; it was deleted`,
    );
  }
  await rename(partial, dest);
  await rm(infoFile, { force: true });
  return { path: dest, sha256, size, resumed };
}
