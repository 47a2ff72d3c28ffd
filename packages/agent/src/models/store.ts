import { createHash, randomBytes } from "node:crypto";
import { link, mkdir, open, readdir, readFile, realpath, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, relative } from "node:path";
import type { LazyDispatcher } from "@beta9/http/undici-lazy";
import type { ModelSpec } from "../engines/engine.ts";
import { type DownloadOptions, download } from "./download.ts";
import { type GgufFacts, ggufFacts, readGgufHeader } from "./gguf.ts";
import { checkFits, estimateMemory } from "./memory.ts";
import { isModelError, ModelError } from "./model-error.ts";
import { type PartialsOptions, sweepPartials } from "./partials.ts";
import { fetchModelCard } from "./provenance.ts";
import { AllowList, guardedDispatcher } from "./source-policy.ts";
import {
  DEFAULT_HUGGING_FACE_BASE_URL,
  type ModelSource,
  resolveSource,
  validateModelName,
} from "./sources.ts";

/*
 * The agent's content-addressed model store (docs/architecture.md §7). Weights live once, as
 * blobs/sha256-<hex>; each model name has one JSON record in models/<name>.json that says which blob,
 * where it came from, under what license and what it is — the provenance record compliance reports
 * read. Records and blobs appear atomically (temp file + rename); a blob no record uses is deleted.
 *
 * Every record has an owner: the machine's (a pull by hand) or a workspace's (a gateway's pull for a
 * deployment). One owner's pull never replaces another's record, and a workspace's pull reuses stored
 * bytes only when they are its own or were fetched from the very source it names.
 */

interface RecordBase {
  /** What clients call the model (canonical, lowercase). */
  name: string;
  /**
   * Whose model it is: a workspace id (a gateway pulled it for a deployment), or null for the
   * machine's owner. Records written before owners were kept have none and are the machine owner's:
   * nothing in them proves a gateway pulled them, and giving them away could hand a tenant the owner's name.
   */
  owner?: string | null | undefined;
  /** The source as the puller gave it: a path, a URL, hf:ORG/REPO/FILE@REV, ollama:NAME:TAG. */
  source: string;
  /** SPDX expression from the file (general.license) or, for hf: sources, the model card; null when neither says. */
  license: string | null;
  /** Where `license` was read; absent in records written before it was kept. */
  license_source?: "gguf" | "model_card" | null | undefined;
  /** What the model was made from (GGUF general.base_model.*, or the model card's base_model). */
  base_model?: string | null | undefined;
  architecture: string | null;
  parameter_count: number | null;
  quantization: string | null;
  context_length: number | null;
  created_at: string;
}

export interface GgufModelRecord extends RecordBase {
  format: "gguf";
  sha256: string;
  size: number;
  /** The URL fetched, for http(s) and hf: sources. */
  url?: string | undefined;
  /** Only for a local file recorded where it lies (localImport "in-place"); otherwise the blob is used. */
  path?: string | undefined;
  /** With `path`: the file's mtime when it was hashed, to notice a file changed behind our back. */
  mtime_ms?: number | undefined;
  /** For a model made by converting another (models/convert/): what it was made from and with what. */
  converted_from?: ConvertedFrom | undefined;
  /** What the memory estimate needs. */
  block_count: number | null;
  embedding_length: number | null;
  head_count: number | null;
  head_count_kv: number | null;
}

/** The origin of a converted model and the tool that made it: the provenance that links the two. */
export interface ConvertedFrom {
  name: string;
  /** Of a safetensors repository directory: over its files' sha256s (convert/hf-tools.ts, hfDirSha256). */
  sha256: string;
  format: "gguf" | "safetensors";
  quantization: string | null;
  /** What the conversion was asked to make ("Q8_0"). */
  target: string;
  /** The program, its llama.cpp release and commit, and the arguments that made this file. */
  converter: { tool: string; version: string; args: string[] };
  /** A copy of another machine's conversion (fetched through the gateway, its sha256 checked): the machine that made it. */
  converted_on?: string | undefined;
}

/**
 * A model the Ollama engine pulls and stores itself. The store only records the name mapping and
 * the provenance; the Ollama engine fills sha256 and size (of the model's GGUF layer) once pulled,
 * with updateOllamaRecord.
 */
export interface OllamaModelRecord extends RecordBase {
  format: "ollama";
  ollamaName: string;
  sha256: string | null;
  size: number | null;
}

export type ModelRecord = GgufModelRecord | OllamaModelRecord;

/** Progress in the shape of Ollama's /api/pull stream, so the control API can pass it on as NDJSON. */
export interface PullProgress {
  status: string;
  digest?: string | undefined;
  total?: number | undefined;
  completed?: number | undefined;
}

export interface PullOptions {
  onProgress?: ((progress: PullProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
  expectedSha256?: string | undefined;
  /** For whom: a workspace id (as a gateway sends it); absent, the machine's owner. */
  owner?: string | undefined;
  /** The pool's operator gave the source: it may reach private addresses and local files as a hand pull can. */
  sourceTrusted?: boolean | undefined;
}

export type PullResult =
  | { status: "stored"; record: GgufModelRecord }
  /** Nothing was downloaded: the Ollama engine must pull `ollamaName` itself. */
  | { status: "ollama"; record: OllamaModelRecord; ollamaName: string; message: string };

export interface ModelStoreOptions {
  /** Default ~/.b9agent/models. */
  dir?: string | undefined;
  /** Directories the machine's owner allows local model files from (the store itself is always allowed). */
  allowedDirs?: readonly string[] | undefined;
  /** How a local file enters the store: copied (default), hard-linked (falls back to a copy), or used in place. */
  localImport?: "copy" | "link" | "in-place" | undefined;
  huggingFaceBaseUrl?: string | undefined;
  /** Sent as `Authorization: Bearer` to the hub's base only (private repositories); never logged. */
  huggingFaceToken?: string | undefined;
  /** Largest file a pull downloads (default DEFAULT_MAX_MODEL_BYTES). */
  maxDownloadBytes?: number | undefined;
  /** Room for unfinished downloads kept for a resume (default DEFAULT_MAX_PARTIAL_BYTES); the oldest go first. */
  maxPartialBytes?: number | undefined;
  /** Private networks (CIDR) or hosts a workspace's source may reach (models.allow_private_sources). */
  allowPrivateSources?: readonly string[] | undefined;
  download?:
    | Pick<
        DownloadOptions,
        | "headersTimeoutMs"
        | "stallTimeoutMs"
        | "retries"
        | "retryDelayMs"
        | "progressIntervalMs"
        | "checkDiskSpace"
        | "fetch"
      >
    | undefined;
  /** Context size to serve with when a caller names none (capped by the model's own). */
  defaultContextSize?: number | undefined;
}

export interface ResolveOptions {
  contextSize?: number | undefined;
  /** When given, refuse ("insufficient_memory") a model that would not fit. */
  freeBytes?: number | undefined;
}

export const DEFAULT_CONTEXT_SIZE = 8192;
/**
 * The largest single GGUF people serve is about 245 GB (Llama 3.1 405B at Q4_K_M); bigger models come
 * split in parts. 256 GiB lets those through and stops an endless body long before most disks fill.
 */
export const DEFAULT_MAX_MODEL_BYTES = 256 * 1024 ** 3;
/** Room to resume a few interrupted 7–70B downloads; more is left to the next pull of that URL to refetch. */
export const DEFAULT_MAX_PARTIAL_BYTES = 32 * 1024 ** 3;
/** Unfinished downloads untouched this long are removed when the agent starts. */
export const PARTIAL_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** The header is read for facts only; the tokenizer's long arrays are not needed. */
const FACT_LIMITS = { keepArrayElements: 64, keepStringBytes: 64 * 1024 };

export function defaultModelsDir(): string {
  return join(homedir(), ".b9agent", "models");
}

/** The record's file name: ":" is not allowed in Windows file names; names never contain "%". */
function recordFile(name: string): string {
  return `${name.replace(":", "%3a")}.json`;
}

function isRecord(value: unknown, name: string): value is ModelRecord {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Record<string, unknown>;
  if (r.name !== name || typeof r.source !== "string" || typeof r.created_at !== "string") return false;
  if (r.format === "gguf") {
    return typeof r.sha256 === "string" && SHA256_HEX.test(r.sha256) && typeof r.size === "number";
  }
  return r.format === "ollama" && typeof r.ollamaName === "string";
}

/** Whose model a record is: a workspace id, or null for the machine's owner (older records included). */
function ownerOf(record: ModelRecord): string | null {
  return typeof record.owner === "string" ? record.owner : null;
}

function ownedError(name: string): ModelError {
  // Nothing about the other owner's model (source, blob, sha256) leaves the machine.
  return new ModelError(
    "model_owned",
    `the name ${name} belongs to another owner's model on this machine; use another name`,
  );
}

const TENANT_CODES = new Set<string>([
  "invalid_model_name",
  "invalid_source",
  "path_not_allowed",
  "model_owned",
  "invalid_checksum",
  "pull_in_progress",
]);

/**
 * What a workspace sees when its untrusted source fails: one answer whatever the address or the
 * failure was, so a source cannot be used to learn what answers inside the machine's network.
 */
function forTenant(err: unknown, source: string): unknown {
  if (err instanceof Error && err.name === "AbortError") return err;
  // These speak of what the workspace sent, not of what answered.
  if (isModelError(err) && TENANT_CODES.has(err.code)) return err;
  const about = JSON.stringify(source);
  const make = (code: ConstructorParameters<typeof ModelError>[0], message: string) =>
    new ModelError(code, message, { cause: err });
  if (isModelError(err, "download_too_large"))
    return make("download_too_large", `the file at ${about} is larger than this machine accepts`);
  if (isModelError(err, "insufficient_disk"))
    return make("insufficient_disk", `this machine has no room for the file at ${about}`);
  if (isModelError(err, "checksum_mismatch"))
    return make("checksum_mismatch", `the file at ${about} does not have the sha256 given; it was deleted`);
  if (isModelError(err, "invalid_gguf"))
    return make("invalid_gguf", `the file at ${about} is not a GGUF model this machine can read`);
  return make(
    "source_unreachable",
    `could not fetch ${about}; give a public http(s):// or hf: source that serves the file`,
  );
}
export class ModelStore {
  readonly dir: string;
  private readonly options: ModelStoreOptions;
  /** Record and blob changes run one at a time, so a remove never deletes a blob a pull just linked. */
  private chain: Promise<unknown> = Promise.resolve();
  /** Downloads and imports in progress, by URL or path: a second pull of the same bytes is refused. */
  private readonly inFlight = new Set<string>();
  /** Partial files of the downloads under way: never swept. */
  private readonly downloading = new Set<string>();
  /** Connections for workspaces' sources: private addresses refused unless the config allows them. */
  private readonly guarded: LazyDispatcher;

  constructor(options: ModelStoreOptions = {}) {
    this.options = options;
    this.dir = options.dir ?? defaultModelsDir();
    // The hub mirror the owner configured is theirs: hf: sources may reach it wherever it is.
    const hub = URL.parse(options.huggingFaceBaseUrl ?? DEFAULT_HUGGING_FACE_BASE_URL)?.hostname;
    this.guarded = guardedDispatcher(
      new AllowList([...(options.allowPrivateSources ?? []), ...(hub ? [hub.replace(/^\[|\]$/g, "")] : [])]),
    );
  }

  private partials(): PartialsOptions {
    return {
      dir: join(this.dir, "downloads"),
      maxBytes: this.options.maxPartialBytes ?? DEFAULT_MAX_PARTIAL_BYTES,
      active: this.downloading,
    };
  }

  /** Where safetensors repositories are fetched to, until converted (models/hf-repo.ts). */
  get hfReposDir(): string {
    return join(this.dir, "hf-repos");
  }

  /**
   * At the agent's start: remove unfinished downloads older than PARTIAL_MAX_AGE_MS and those over the
   * quota, and every fetched safetensors repository (a .tmp- one an agent died fetching, or one whose
   * conversion never finished): nothing is converting yet, and a pull fetches again what it needs.
   */
  async sweepDownloads(): Promise<string[]> {
    const removed = await sweepPartials({ ...this.partials(), maxAgeMs: PARTIAL_MAX_AGE_MS });
    const repos = await readdir(this.hfReposDir).catch(() => []);
    for (const name of repos) {
      const dir = join(this.hfReposDir, name);
      await rm(dir, { recursive: true, force: true });
      removed.push(dir);
    }
    return removed;
  }

  /** Refuse ("model_owned") when `name` is stored for an owner other than `owner` (undefined: the machine's). */
  async checkOwner(name: string, owner: string | undefined): Promise<void> {
    const record = await this.get(name);
    if (record && ownerOf(record) !== (owner ?? null)) throw ownedError(record.name);
  }

  blobPath(sha256: string): string {
    return join(this.dir, "blobs", `sha256-${sha256}`);
  }

  private recordPath(name: string): string {
    return join(this.dir, "models", recordFile(name));
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Pull `source` into the store under `name`. http(s) and hf: sources are downloaded (resumably),
   * local files hashed and copied, linked or recorded in place; ollama: sources are only recorded.
   * Replacing a name frees the blob it used when nothing else uses it.
   */
  async pull(name: string, source: string, options: PullOptions = {}): Promise<PullResult> {
    const modelName = validateModelName(name);
    const expected = options.expectedSha256?.toLowerCase();
    if (expected !== undefined && !SHA256_HEX.test(expected)) {
      throw new ModelError("invalid_checksum", "the expected sha256 must be 64 hexadecimal digits");
    }
    const owner = options.owner ?? null;
    // A workspace's source, unless the operator gave it: no files of the machine, no private addresses.
    const restricted = owner !== null && options.sourceTrusted !== true;
    if (restricted && isLocalSource(source)) {
      throw new ModelError(
        "path_not_allowed",
        "a deployment's source must be an http(s)://, hf: or ollama: source; files on a machine are for its owner to pull",
      );
    }
    const src = await resolveSource(source, {
      storeDir: this.dir,
      allowedDirs: this.options.allowedDirs,
      huggingFaceBaseUrl: this.options.huggingFaceBaseUrl,
    });
    const progress = options.onProgress ?? (() => {});
    if (src.kind === "ollama") {
      await this.checkOwner(modelName, options.owner);
      const record: OllamaModelRecord = {
        name: modelName,
        owner,
        format: "ollama",
        source: src.text,
        ollamaName: src.ollamaName,
        sha256: null,
        size: null,
        license: null,
        license_source: null,
        base_model: null,
        architecture: null,
        parameter_count: null,
        quantization: null,
        context_length: null,
        created_at: new Date().toISOString(),
      };
      await this.exclusive(() => this.commit(record, owner));
      return {
        status: "ollama",
        record,
        ollamaName: src.ollamaName,
        message: `${src.ollamaName} is pulled by the Ollama engine, not by the agent's store; start it with the ollama engine`,
      };
    }

    // Claimed before anything else is awaited, so of two pulls of one source the first one asked goes on.
    const key = src.kind === "local" ? src.path : src.url;
    if (this.inFlight.has(key)) {
      throw new ModelError(
        "pull_in_progress",
        `${src.text} is already being pulled; wait for that pull to finish`,
      );
    }
    this.inFlight.add(key);
    try {
      // Early, so nothing is fetched for a name that cannot be had; checked again when the record is written.
      await this.checkOwner(modelName, options.owner);
      let record: GgufModelRecord;
      if (expected !== undefined && (await this.mayReuse(expected, owner, src))) {
        // Blobs are named by verified content: the bytes are already here.
        record = await this.recordFor(modelName, src.text, this.blobPath(expected), expected, owner);
        if (src.kind !== "local") record.url = src.url;
        if (src.kind === "hf") await this.fillFromModelCard(record, src, restricted);
        await this.exclusive(() => this.commit(record, owner));
      } else if (src.kind === "local") {
        record = await this.importLocal(modelName, src.text, src.path, expected, options, owner);
      } else {
        try {
          const card = src.kind === "hf" ? src : undefined;
          record = await this.fetchRemote(
            modelName,
            src.text,
            src.url,
            expected,
            options,
            owner,
            restricted,
            card,
          );
        } catch (err) {
          if (options.signal?.aborted) throw err;
          throw restricted ? forTenant(err, src.text) : err;
        }
      }
      progress({ status: "success" });
      return { status: "stored", record };
    } finally {
      this.inFlight.delete(key);
    }
  }

  /**
   * Whether the stored blob `sha256` may serve this pull without fetching it: when a record of the same
   * owner uses it, or one whose bytes were fetched (and verified) from this very URL. A sha256 alone
   * proves nothing: anyone can copy another workspace's hash into a deployment.
   */
  private async mayReuse(sha256: string, owner: string | null, src: ModelSource): Promise<boolean> {
    if (!(await exists(this.blobPath(sha256)))) return false;
    const url = src.kind === "local" || src.kind === "ollama" ? undefined : src.url;
    return (await this.list()).some(
      (r) =>
        r.format === "gguf" &&
        r.path === undefined &&
        r.sha256 === sha256 &&
        (ownerOf(r) === owner || (url !== undefined && r.url === url)),
    );
  }

  private async fetchRemote(
    name: string,
    sourceText: string,
    url: string,
    expected: string | undefined,
    options: PullOptions,
    owner: string | null,
    restricted: boolean,
    card: { repo: string; revision: string } | undefined,
  ): Promise<GgufModelRecord> {
    const progress = options.onProgress ?? (() => {});
    const downloads = join(this.dir, "downloads");
    // Keyed by URL, so a later pull of the same URL finds and resumes the partial file.
    const dest = join(downloads, `${createHash("sha256").update(url).digest("hex").slice(0, 32)}.gguf`);
    const digest = expected ? `sha256:${expected}` : undefined;
    progress({ status: "pulling manifest" });
    this.downloading.add(dest);
    let result: Awaited<ReturnType<typeof download>>;
    try {
      // This name's downloads from other URLs will never be resumed; the rest stay within the quota.
      await sweepPartials({ ...this.partials(), model: name, url });
      result = await download(url, dest, {
        ...this.options.download,
        maxBytes: this.options.maxDownloadBytes ?? DEFAULT_MAX_MODEL_BYTES,
        expectedSha256: expected,
        signal: options.signal,
        label: name,
        ...(restricted ? { dispatcher: this.guarded } : {}),
        headers: this.hubAuthFor(url),
        onProgress: (p) =>
          progress({ status: `pulling ${name}`, digest, total: p.total, completed: p.completed }),
      });
    } finally {
      this.downloading.delete(dest);
      // What this pull left for a resume counts against the quota at once.
      await sweepPartials(this.partials()).catch(() => []);
    }
    progress({ status: "verifying sha256 digest" });
    let record: GgufModelRecord;
    try {
      record = await this.recordFor(name, sourceText, result.path, result.sha256, owner);
      record.url = url;
      if (card) await this.fillFromModelCard(record, card, restricted);
      progress({ status: "writing manifest" });
      await this.exclusive(async () => {
        await this.checkOwner(name, owner ?? undefined);
        await this.placeBlob(result.path, result.sha256);
        await this.commit(record, owner);
      });
    } finally {
      await rm(result.path, { force: true });
    }
    return record;
  }

  private async importLocal(
    name: string,
    sourceText: string,
    path: string,
    expected: string | undefined,
    options: PullOptions,
    owner: string | null,
  ): Promise<GgufModelRecord> {
    const progress = options.onProgress ?? (() => {});
    let mode = this.options.localImport ?? "copy";
    // A file already inside the store (say, a blob) must not be recorded in place: removals would break it.
    if (mode === "in-place" && isInside(path, await realpath(this.dir).catch(() => this.dir))) mode = "link";
    const st = await stat(path);
    const report = (status: string) => (completed: number) => progress({ status, total: st.size, completed });

    if (mode === "in-place") {
      const sha256 = await hashFile(path, report("hashing"), options.signal);
      checkExpected(sha256, expected);
      const record = await this.recordFor(name, sourceText, path, sha256, owner);
      record.path = path;
      record.mtime_ms = st.mtimeMs;
      progress({ status: "writing manifest" });
      await this.exclusive(() => this.commit(record, owner));
      return record;
    }

    const blobs = join(this.dir, "blobs");
    await mkdir(blobs, { recursive: true });
    const tmp = join(blobs, `.tmp-${randomBytes(8).toString("hex")}`);
    try {
      let sha256: string | undefined;
      if (mode === "link") {
        try {
          await link(path, tmp);
          sha256 = await hashFile(tmp, report("hashing"), options.signal);
        } catch (err) {
          // Another file system (EXDEV) or no hard links here: copy instead.
          if (options.signal?.aborted) throw err;
          await rm(tmp, { force: true });
        }
      }
      sha256 ??= await copyHashing(path, tmp, report("copying"), options.signal);
      checkExpected(sha256, expected);
      progress({ status: "verifying sha256 digest" });
      const record = await this.recordFor(name, sourceText, tmp, sha256, owner);
      progress({ status: "writing manifest" });
      await this.exclusive(async () => {
        await this.checkOwner(name, owner ?? undefined);
        await this.placeBlob(tmp, sha256);
        await this.commit(record, owner);
      });
      return record;
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Where hf: sources come from (the owner's mirror, or Hugging Face). */
  get huggingFaceBaseUrl(): string {
    return this.options.huggingFaceBaseUrl ?? DEFAULT_HUGGING_FACE_BASE_URL;
  }

  /**
   * The hub token's header for a URL under the configured base, else none: another host (a redirect
   * target, any other source) never sees it.
   */
  hubAuthFor(url: string): Record<string, string> | undefined {
    const token = this.options.huggingFaceToken;
    const base = `${this.huggingFaceBaseUrl.replace(/\/+$/, "")}/`;
    return token && url.startsWith(base) ? { authorization: `Bearer ${token}` } : undefined;
  }

  /** The connections a source may use: a workspace's (restricted) never reach private addresses. */
  dispatcherFor(restricted: boolean): LazyDispatcher | undefined {
    return restricted ? this.guarded : undefined;
  }

  /**
   * Download one file of a repository into `dest` (resumably, keyed by its URL in the store's
   * downloads folder, within the partial quota) as a pull does; returns the finished file's path.
   */
  async downloadFile(
    url: string,
    dest: string,
    opts: Pick<DownloadOptions, "expectedSha256" | "signal" | "label" | "onProgress"> & {
      restricted: boolean;
      /** Instead of the hub's token (for the hub's URLs): the gateway's credentials for a pool copy. */
      headers?: Record<string, string> | undefined;
      /** Instead of the store's own connections: the gateway's, with its CA. */
      dispatcher?: LazyDispatcher | undefined;
    },
  ): Promise<{ path: string; sha256: string; size: number }> {
    const partial = join(
      this.dir,
      "downloads",
      `${createHash("sha256").update(url).digest("hex").slice(0, 32)}.file`,
    );
    this.downloading.add(partial);
    try {
      const result = await download(url, partial, {
        ...this.options.download,
        maxBytes: this.options.maxDownloadBytes ?? DEFAULT_MAX_MODEL_BYTES,
        expectedSha256: opts.expectedSha256,
        signal: opts.signal,
        label: opts.label,
        onProgress: opts.onProgress,
        ...(opts.restricted
          ? { dispatcher: this.guarded }
          : opts.dispatcher
            ? { dispatcher: opts.dispatcher }
            : {}),
        headers: opts.headers ?? this.hubAuthFor(url),
      });
      await rename(result.path, dest);
      return { path: dest, sha256: result.sha256, size: result.size };
    } finally {
      this.downloading.delete(partial);
      await sweepPartials(this.partials()).catch(() => []);
    }
  }

  /** A new file in the store's blobs folder, for a conversion to write into before addConverted. */
  async tempBlobPath(): Promise<string> {
    const blobs = join(this.dir, "blobs");
    await mkdir(blobs, { recursive: true });
    return join(blobs, `.tmp-${randomBytes(8).toString("hex")}`);
  }

  /**
   * Store the finished conversion `file` (from tempBlobPath) as model `name`: hashed, moved to its blob
   * and recorded with its origin. The file is gone afterwards, stored or not.
   */
  async addConverted(
    name: string,
    file: string,
    origin: { source: string; converted_from: ConvertedFrom },
    options: {
      owner?: string | undefined;
      signal?: AbortSignal | undefined;
      /** The file's sha256 as the download that wrote it checked it: not hashed again. */
      verifiedSha256?: string | undefined;
    } = {},
  ): Promise<GgufModelRecord> {
    const modelName = validateModelName(name);
    const owner = options.owner ?? null;
    try {
      const sha256 = options.verifiedSha256 ?? (await hashFile(file, () => {}, options.signal));
      const record = await this.recordFor(modelName, origin.source, file, sha256, owner);
      record.converted_from = origin.converted_from;
      await this.exclusive(async () => {
        await this.checkOwner(modelName, owner ?? undefined);
        await this.placeBlob(file, sha256);
        await this.commit(record, owner);
      });
      return record;
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * A conversion the store has already, under `name` too: a link of its blob, hashed again as it is
   * recorded with `origin`; `done` itself when it has that name.
   */
  async linkConverted(
    done: GgufModelRecord,
    name: string,
    origin: { source: string; converted_from: ConvertedFrom },
    options: { owner?: string | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<GgufModelRecord> {
    if (done.name === name) return done;
    const tmp = await this.tempBlobPath();
    try {
      await link(this.blobPath(done.sha256), tmp);
      return await this.addConverted(name, tmp, origin, options);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Read the GGUF header of `path` and build the record (the file is not yet in its final place). */
  private async recordFor(
    name: string,
    source: string,
    path: string,
    sha256: string,
    owner: string | null,
  ): Promise<GgufModelRecord> {
    const header = await readGgufHeader(path, FACT_LIMITS);
    const facts: GgufFacts = ggufFacts(header.metadata, header.fileBytes, header.tensors);
    return {
      name,
      owner,
      format: "gguf",
      sha256,
      size: header.fileBytes,
      source,
      license: facts.license,
      license_source: facts.license === null ? null : "gguf",
      base_model: facts.base_model,
      architecture: facts.architecture,
      parameter_count: facts.parameter_count,
      quantization: facts.quantization,
      context_length: facts.context_length,
      block_count: facts.block_count,
      embedding_length: facts.embedding_length,
      head_count: facts.head_count,
      head_count_kv: facts.head_count_kv,
      created_at: new Date().toISOString(),
    };
  }

  /**
   * What the GGUF header left unsaid (licence, base model), from the hf: repository's model card on the
   * hub the weights came from; the file's own word wins, and a card that says nothing leaves null.
   */
  private async fillFromModelCard(
    record: GgufModelRecord,
    card: { repo: string; revision: string },
    restricted: boolean,
  ): Promise<void> {
    if (record.license !== null && record.base_model) return;
    const facts = await fetchModelCard(
      this.options.huggingFaceBaseUrl ?? DEFAULT_HUGGING_FACE_BASE_URL,
      card.repo,
      card.revision,
      restricted ? this.guarded : undefined,
    );
    if (!facts) return;
    if (record.license === null && facts.license !== null) {
      record.license = facts.license;
      record.license_source = "model_card";
    }
    record.base_model ||= facts.base_model;
  }

  /** Move a verified file to its blob path; when the blob exists already, the file is dropped. Call under the lock. */
  private async placeBlob(file: string, sha256: string): Promise<void> {
    const blob = this.blobPath(sha256);
    await mkdir(join(this.dir, "blobs"), { recursive: true });
    if (await exists(blob)) await rm(file, { force: true });
    else await rename(file, blob);
  }

  /**
   * Write the record atomically, then free the blob of the record it replaced. Call under the lock.
   * Another owner's record is never replaced ("model_owned").
   */
  private async commit(record: ModelRecord, owner: string | null): Promise<void> {
    const previous = await this.get(record.name).catch(() => undefined);
    if (previous && ownerOf(previous) !== owner) throw ownedError(record.name);
    await writeAtomically(this.recordPath(record.name), `${JSON.stringify(record, null, 2)}\n`);
    const sameBlob =
      record.format === "gguf" && record.path === undefined && record.sha256 === previous?.sha256;
    if (previous?.format === "gguf" && !sameBlob) await this.freeBlobIfUnused(previous);
  }

  private async freeBlobIfUnused(record: GgufModelRecord): Promise<boolean> {
    if (record.path !== undefined) return false;
    const users = (await this.list()).filter(
      (r) => r.format === "gguf" && r.path === undefined && r.sha256 === record.sha256,
    );
    if (users.length > 0) return false;
    await rm(this.blobPath(record.sha256), { force: true });
    return true;
  }

  /**
   * The blob of a conversion stored here for `owner` (null: the machine's) with this sha256, for the
   * gateway to copy to another machine of the pool; undefined when there is none. Only conversions.
   */
  async convertedBlob(
    sha256: string,
    owner: string | null,
  ): Promise<{ path: string; size: number } | undefined> {
    const r = (await this.list()).find(
      (r) =>
        r.format === "gguf" &&
        r.path === undefined &&
        r.converted_from !== undefined &&
        r.sha256 === sha256 &&
        ownerOf(r) === owner,
    );
    return r?.format === "gguf" ? { path: this.blobPath(r.sha256), size: r.size } : undefined;
  }

  async get(name: string): Promise<ModelRecord | undefined> {
    const modelName = validateModelName(name);
    let text: string;
    try {
      text = await readFile(this.recordPath(modelName), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!isRecord(parsed, modelName)) {
      throw new ModelError(
        "record_corrupt",
        `the record of ${modelName} at ${this.recordPath(modelName)} is damaged; pull the model again`,
      );
    }
    return parsed;
  }

  /** Every model, by name. A damaged record is left out (get() reports it). */
  async list(): Promise<ModelRecord[]> {
    let files: string[];
    try {
      files = await readdir(join(this.dir, "models"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const records: ModelRecord[] = [];
    for (const file of files) {
      if (!file.endsWith(".json") || file.startsWith(".")) continue;
      const name = file.slice(0, -".json".length).replace("%3a", ":");
      try {
        const record = await this.get(name);
        if (record) records.push(record);
      } catch {
        // Damaged or foreign file: skipped here, reported by get().
      }
    }
    return records.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Remove a model's record, and its blob when no other record uses it. */
  async remove(name: string): Promise<{ record: ModelRecord; blobRemoved: boolean }> {
    const modelName = validateModelName(name);
    return this.exclusive(async () => {
      const record = await this.get(modelName);
      if (!record) throw new ModelError("model_not_found", `no model named ${modelName} on this machine`);
      await rm(this.recordPath(modelName), { force: true });
      const blobRemoved = record.format === "gguf" ? await this.freeBlobIfUnused(record) : false;
      return { record, blobRemoved };
    });
  }

  /** Store the digest and size the Ollama engine reports once it has pulled an ollama: model. */
  async updateOllamaRecord(
    name: string,
    details: Partial<
      Pick<
        OllamaModelRecord,
        "sha256" | "size" | "license" | "architecture" | "parameter_count" | "quantization" | "context_length"
      >
    >,
  ): Promise<OllamaModelRecord> {
    const modelName = validateModelName(name);
    return this.exclusive(async () => {
      const record = await this.get(modelName);
      if (record?.format !== "ollama") {
        throw new ModelError("model_not_found", `no Ollama model named ${modelName} on this machine`);
      }
      const updated: OllamaModelRecord = { ...record, ...details, name: record.name, format: "ollama" };
      await writeAtomically(this.recordPath(modelName), `${JSON.stringify(updated, null, 2)}\n`);
      return updated;
    });
  }

  /** What an engine needs to serve `name`: where the weights are, the context size, the memory it will take. */
  async resolve(name: string, options: ResolveOptions = {}): Promise<ModelSpec> {
    const record = await this.get(name);
    if (!record)
      throw new ModelError("model_not_found", `no model named ${validateModelName(name)} on this machine`);
    if (record.format === "ollama") {
      return {
        name: record.name,
        format: "ollama",
        ollamaName: record.ollamaName,
        contextSize: options.contextSize,
      };
    }
    const path = record.path ?? this.blobPath(record.sha256);
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(path);
    } catch {
      throw new ModelError(
        "model_not_found",
        // No path nor hash in what may travel to a gateway and its tenants.
        `the weights of ${record.name} are missing on this machine; pull it again`,
      );
    }
    if (st.size !== record.size || (record.mtime_ms !== undefined && st.mtimeMs !== record.mtime_ms)) {
      throw new ModelError(
        "model_changed",
        `the weights of ${record.name} changed on disk since they were recorded; pull it again`,
      );
    }
    const modelMax = record.context_length ?? Number.POSITIVE_INFINITY;
    const contextSize =
      options.contextSize ?? Math.min(modelMax, this.options.defaultContextSize ?? DEFAULT_CONTEXT_SIZE);
    const estimate = estimateMemory(record, { contextSize, fileBytes: record.size });
    if (options.freeBytes !== undefined) checkFits(estimate, options.freeBytes);
    return { name: record.name, format: "gguf", path, contextSize, memoryBytes: estimate.total_bytes };
  }
}

function isInside(child: string, root: string): boolean {
  const rel = relative(root, child);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
}

/** A source naming a file on this machine (a path, ~/…, file:…), before anything resolves it. */
function isLocalSource(source: unknown): boolean {
  if (typeof source !== "string") return false;
  return /^file:/i.test(source) || source === "~" || source.startsWith("~/") || isAbsolute(source);
}

function checkExpected(sha256: string, expected: string | undefined): void {
  if (expected !== undefined && sha256 !== expected) {
    throw new ModelError("checksum_mismatch", `the file's sha256 is ${sha256}, not the expected ${expected}`);
  }
}

/** Whether something is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const dir = join(path, "..");
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${randomBytes(8).toString("hex")}.tmp`);
  try {
    const fh = await open(tmp, "w");
    try {
      await fh.writeFile(text);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

const PROGRESS_INTERVAL_MS = 250;

function throttled(report: (completed: number) => void): (completed: number, force?: boolean) => void {
  let last = 0;
  return (completed, force = false) => {
    const now = Date.now();
    if (!force && now - last < PROGRESS_INTERVAL_MS) return;
    last = now;
    report(completed);
  };
}

/**
 * Read a file in 1 MiB pieces through one reused buffer (a fresh buffer per chunk left tens of MB
 * of native memory with the agent after a pull), handing each piece to `each`.
 */
async function readChunks(
  path: string,
  signal: AbortSignal | undefined,
  each: (piece: Buffer) => Promise<void> | void,
) {
  const fh = await open(path, "r");
  const buf = Buffer.allocUnsafe(1024 * 1024);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      await each(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
}

/** The sha256 of a file's bytes, read once, with progress (bytes read so far). */
export async function hashFile(
  path: string,
  report: (completed: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createHash("sha256");
  const tick = throttled(report);
  let done = 0;
  tick(0, true);
  await readChunks(path, signal, (piece) => {
    hash.update(piece);
    done += piece.length;
    tick(done);
  });
  tick(done, true);
  return hash.digest("hex");
}

/** Copy `from` to `to` and return the sha256 of the bytes written, read once. */
async function copyHashing(
  from: string,
  to: string,
  report: (completed: number) => void,
  signal?: AbortSignal,
): Promise<string> {
  const hash = createHash("sha256");
  const tick = throttled(report);
  const fh = await open(to, "w");
  let done = 0;
  try {
    tick(0, true);
    await readChunks(from, signal, async (piece) => {
      hash.update(piece);
      await fh.write(piece);
      done += piece.length;
      tick(done);
    });
    await fh.datasync();
  } finally {
    await fh.close();
  }
  tick(done, true);
  return hash.digest("hex");
}
