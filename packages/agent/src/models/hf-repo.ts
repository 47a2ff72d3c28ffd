import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { loadUndici } from "@beta9/http/undici-lazy";
import { BITS_PER_WEIGHT, type PullProgress } from "@beta9/protocol";
import { HF_TO_GGUF_TYPES, safetensorsToGguf } from "./convert/hf-to-gguf.ts";
import { converterPython, type HfFile, hfDirSha256, READ } from "./convert/hf-tools.ts";
import { parseQuantizationType, quantizeModel } from "./convert/quantize.ts";
import { isModelError, ModelError } from "./model-error.ts";
import { joinRun, type Progress, type SharedRun } from "./shared-run.ts";
import type { HfRepoSource } from "./sources.ts";
import { exists, type GgufModelRecord, type ModelStore } from "./store.ts";

/*
 * `hf:ORG/REPO[@REV]`, a safetensors repository: its files are listed with Hugging Face's tree API on
 * the configured base, fetched (sizes and LFS sha256 verified, resumable like a pull) into
 * <store>/hf-repos/sha256-<directory hash>/, converted once to GGUF by llama.cpp's converter (F16, or
 * the deployment's type through quantizeModel), and that GGUF is what the builtin engine serves.
 */

export interface HfRepoPull {
  name: string;
  /** The name an F16 conversion is kept under when the type asked needs quantizeModel after it. */
  sourceName: string;
  source: HfRepoSource;
  owner?: string | undefined;
  quantize?: string | undefined;
  /** The directory's sha256 (or its F16 GGUF's) a gateway saw this machine pull before. */
  expectedSha256?: string | undefined;
  /** A workspace's source: no private addresses beyond the configured hub. */
  restricted: boolean;
  signal?: AbortSignal | undefined;
  onProgress: (p: PullProgress) => void;
  /**
   * All the memory this machine has for weights (RAM and GPU memory together): a model whose weights at
   * the type asked could never fit is refused from the listing, before any weight is fetched.
   */
  capacityBytes?: number | undefined;
}

interface TreeEntry {
  type: string;
  path: string;
  size: number;
  lfs?: { oid: string; size: number };
}

/** Where downloaded repositories are kept until converted, by the hash of their files (hf-tools' hfDirSha256). */
export function hfReposDir(store: ModelStore): string {
  return store.hfReposDir;
}

const TOKENIZERS = ["tokenizer.json", "tokenizer.model"];

/** Pulls running in this agent, by store, owner, source, name and type: concurrent requests share one. */
const inFlight = new Map<string, SharedRun<GgufModelRecord>>();
/** Repository fetches running, by store and source: two names from one repository fetch it once. */
const fetching = new Map<string, SharedRun<FetchedRepo>>();

/**
 * Fetched repository directories and the pulls converting them: each is removed once the last has
 * finished and one of them converted it (the records' provenance finds the GGUF from then on).
 */
const holds = new Map<string, { count: number; converted: boolean }>();
/** Directories being removed: a pull that finds one waits, then fetches afresh. */
const removing = new Map<string, Promise<void>>();

async function holdDir(dir: string): Promise<void> {
  for (let gone = removing.get(dir); gone; gone = removing.get(dir)) await gone;
  // No await between the check and the count: a removal is never decided under a holder.
  const h = holds.get(dir) ?? { count: 0, converted: false };
  h.count++;
  holds.set(dir, h);
}

/** Done with `dir`; the last holder removes it when it was converted, and answers once it is gone. */
function releaseDir(dir: string, converted: boolean): Promise<void> {
  const h = holds.get(dir);
  if (!h) return Promise.resolve();
  h.converted ||= converted;
  if (--h.count > 0) return Promise.resolve();
  holds.delete(dir);
  if (!h.converted) return Promise.resolve();
  const gone = rm(dir, { recursive: true, force: true })
    .catch(() => {})
    .finally(() => removing.delete(dir));
  removing.set(dir, gone);
  return gone;
}

/** A GGUF of the store converted from the repository files `sha256` to `target` for `owner`. */
async function convertedFrom(
  store: ModelStore,
  owner: string | undefined,
  sha256: string,
  target: string,
): Promise<GgufModelRecord | undefined> {
  return (await store.list()).find(
    (r): r is GgufModelRecord =>
      r.format === "gguf" &&
      (r.owner ?? null) === (owner ?? null) &&
      r.converted_from?.format === "safetensors" &&
      r.converted_from.sha256 === sha256 &&
      r.converted_from.target === target,
  );
}

/** Pull the repository and convert it to the GGUF `name`; never twice for the same files and type. */
export async function pullHfRepo(store: ModelStore, req: HfRepoPull): Promise<GgufModelRecord> {
  // Before any byte moves: a machine that cannot convert says so and how to fix it.
  converterPython(undefined);
  const target = req.quantize === undefined ? "F16" : parseQuantizationType(req.quantize, req.name);
  const key = [store.dir, req.owner ?? "", req.source.text, req.name, target].join("\0");
  return joinRun(inFlight, key, req, (signal, emit) =>
    pullAndConvert(store, { ...req, signal, onProgress: emit }, target),
  );
}

/** A fetched repository (held for its caller), or only its files' hash when a conversion of it is stored. */
interface FetchedRepo {
  dir: string | null;
  sha256: string;
}

async function pullAndConvert(store: ModelStore, req: HfRepoPull, target: string): Promise<GgufModelRecord> {
  const { name, source } = req;
  const fail = (step: string, reason: string) =>
    new ModelError("conversion_failed", `pulling ${name} from ${source.text} failed at ${step}: ${reason}`);
  // A machine that could not tell its memory (0) is not held to it.
  if (req.capacityBytes) await checkCapacity(store, req, target, req.capacityBytes, fail);
  const direct = HF_TO_GGUF_TYPES.find((t) => t === target);
  const first = direct ?? "F16";
  const stage = direct ? name : req.sourceName;
  // Each caller names its own model in the bytes' progress.
  const onProgress: Progress = (p) =>
    req.onProgress(p.status === "pulling" ? { ...p, status: `pulling ${name}` } : p);
  let repo: FetchedRepo;
  let made: GgufModelRecord | undefined;
  for (let tries = 0; ; tries++) {
    // The weights are skipped when this pull's conversion is stored; another type's needs them.
    const skip = tries < 2 ? (sha256: string) => convertedFrom(store, req.owner, sha256, first) : undefined;
    repo = await joinRun(
      fetching,
      [store.dir, String(req.restricted), source.text].join("\0"),
      { signal: req.signal, onProgress },
      (signal, emit) => fetchRepo(store, { ...req, signal, onProgress: emit }, fail, skip),
    );
    if (repo.dir !== null) {
      await holdDir(repo.dir);
      break;
    }
    made = await convertedFrom(store, req.owner, repo.sha256, first);
    if (made) break;
  }
  let converted = false;
  try {
    const f16 = made
      ? await store.linkConverted(
          made,
          stage,
          { source: source.text, converted_from: { ...made.converted_from!, name: source.text } },
          req,
        )
      : await safetensorsToGguf(store, {
          dir: repo.dir!,
          name: stage,
          source: source.text,
          type: first,
          owner: req.owner,
          signal: req.signal,
          onProgress: (p) =>
            req.onProgress(
              p.status === "converting"
                ? {
                    status: `converting ${name} from safetensors`,
                    completed: p.completed,
                    total: p.total,
                    unit: "tensors",
                  }
                : { status: p.status },
            ),
        });
    converted = true;
    if (direct) return f16;
  } finally {
    if (repo.dir !== null) await releaseDir(repo.dir, converted);
  }
  const quantizing = `quantizing ${name} to ${target}`;
  return quantizeModel(store, {
    from: req.sourceName,
    name,
    type: target,
    owner: req.owner,
    signal: req.signal,
    onProgress: (p) =>
      req.onProgress(
        p.status === "quantizing"
          ? { status: quantizing, completed: p.completed, total: p.total, unit: "tensors" }
          : { status: p.status },
      ),
  });
}

/** Bytes per weight of a checkpoint's `torch_dtype`; unknown ones count as float32 (never refuse wrongly). */
const BYTES_PER_WEIGHT: Record<string, number> = { float16: 2, bfloat16: 2, float32: 4 };

/**
 * The weights a repository makes at `target`, estimated from the listing (its safetensors files'
 * sizes over its config's dtype) against all the memory the machine has: a model that could never be
 * loaded here is refused before gigabytes are fetched and converted, so the gateway tries the next one.
 */
async function checkCapacity(
  store: ModelStore,
  req: HfRepoPull,
  target: string,
  capacity: number,
  fail: (step: string, reason: string) => ModelError,
): Promise<void> {
  const listed = await listRepo(store, req, fail);
  const config = listed.find((f) => f.path === "config.json");
  let dtype: unknown;
  if (config) {
    const url = `${repoFilesBase(store, req.source)}/config.json`;
    const headers = store.hubAuthFor(url);
    try {
      const res = await (await loadUndici()).fetch(url, {
        signal: req.signal,
        dispatcher: await store.dispatcherFor(req.restricted)?.get(),
        ...(headers ? { headers } : {}),
      });
      const parsed = res.ok
        ? (JSON.parse(await res.text()) as { torch_dtype?: unknown; dtype?: unknown })
        : {};
      dtype = parsed.torch_dtype ?? parsed.dtype;
    } catch (err) {
      if (req.signal?.aborted) throw err;
      // The fetch proper says what is wrong with the repository.
    }
  }
  const checkpoint = listed
    .filter((f) => f.path.endsWith(".safetensors"))
    .reduce((sum, f) => sum + f.size, 0);
  const weights = checkpoint / (BYTES_PER_WEIGHT[String(dtype)] ?? 4);
  const need = (weights * (BITS_PER_WEIGHT[target] ?? 16)) / 8;
  if (need <= capacity) return;
  const gib = (b: number) => (b / 1024 ** 3).toFixed(1);
  throw new ModelError(
    "insufficient_memory",
    `${req.source.text} as GGUF ${target} needs about ${gib(need)} GiB for its weights alone (${(weights / 1e9).toFixed(1)} B parameters), more than the ${gib(capacity)} GiB of memory this machine has in all; deploy it with a smaller --quantize type or on a larger machine`,
  );
}

/** Where the repository's folder's files are fetched from (…/resolve/REV[/FOLDER]). */
function repoFilesBase(store: ModelStore, source: HfRepoSource): string {
  const { repo, revision, folder } = source;
  return `${store.huggingFaceBaseUrl.replace(/\/+$/, "")}/${repo}/resolve/${encodeURIComponent(revision)}${folder === "" ? "" : `/${urlPath(folder)}`}`;
}

/** A path of the repository as a URL's path: each segment encoded, the slashes kept. */
const urlPath = (path: string) => path.split("/").map(encodeURIComponent).join("/");

/**
 * The files of the repository's folder (the top level unless the source names one) as the tree API
 * lists them, what a conversion reads; each entry's `path` is its name within the folder.
 */
async function listRepo(
  store: ModelStore,
  req: HfRepoPull,
  fail: (step: string, reason: string) => ModelError,
): Promise<TreeEntry[]> {
  const { repo, revision, folder } = req.source;
  const within = folder === "" ? "" : `/${urlPath(folder)}`;
  const url = `${store.huggingFaceBaseUrl.replace(/\/+$/, "")}/api/models/${repo}/tree/${encodeURIComponent(revision)}${within}`;
  const where = folder === "" ? "the repository" : `the repository's folder ${folder}`;
  let entries: unknown;
  try {
    const headers = store.hubAuthFor(url);
    const res = await (await loadUndici()).fetch(url, {
      signal: req.signal,
      dispatcher: await store.dispatcherFor(req.restricted)?.get(),
      ...(headers ? { headers } : {}),
    });
    if (res.status === 404 || res.status === 401 || res.status === 403)
      throw new Error(
        `${url} answered ${res.status}: no such repository${folder === "" ? "" : ", folder"} or revision, or it is private and ${
          headers
            ? "the configured Hugging Face token may not read it"
            : "no Hugging Face token is configured (models.huggingface_token in the agent's config, or HF_TOKEN)"
        }`,
      );
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    entries = JSON.parse(await res.text());
  } catch (err) {
    if (req.signal?.aborted) throw err;
    throw fail("listing the repository", (err as Error).message);
  }
  if (!Array.isArray(entries)) throw fail("listing the repository", `${url} did not answer a file list`);
  // The tree API names a folder's files by their path from the top: only the folder's own are read.
  const prefix = folder === "" ? "" : `${folder}/`;
  const files = (entries as TreeEntry[])
    .filter(
      (e) =>
        e?.type === "file" &&
        typeof e.path === "string" &&
        e.path.startsWith(prefix) &&
        !e.path.slice(prefix.length).includes("/") &&
        Number.isSafeInteger(e.size) &&
        READ.test(e.path.slice(prefix.length)),
    )
    .map((e) => ({ ...e, path: e.path.slice(prefix.length) }));
  const names = files.map((f) => f.path);
  if (!names.includes("config.json")) throw fail("listing the repository", `${where} has no config.json`);
  if (!names.some((n) => TOKENIZERS.includes(n)))
    throw fail(
      "listing the repository",
      `${where} has no tokenizer (tokenizer.json or tokenizer.model); a model without one cannot be served`,
    );
  if (!names.some((n) => n.endsWith(".safetensors")))
    throw fail("listing the repository", `${where} has no .safetensors files`);
  for (const f of files)
    if (f.lfs && !/^[0-9a-f]{64}$/.test(f.lfs.oid))
      throw fail("listing the repository", `the listing gives ${f.path} no sha256`);
  return files;
}

/**
 * Fetch the repository into <store>/hf-repos/sha256-<hash>/, or find it there: the small files are
 * fetched and hashed, the weights' sha256 come from the listing (LFS), and only a directory whose hash
 * is not stored yet fetches its weights. Written in a .tmp- folder renamed when whole.
 */
async function fetchRepo(
  store: ModelStore,
  req: HfRepoPull,
  fail: (step: string, reason: string) => ModelError,
  skipWeights: ((sha256: string) => Promise<unknown>) | undefined,
): Promise<FetchedRepo> {
  req.onProgress({ status: "pulling manifest" });
  const listed = await listRepo(store, req, fail);
  const root = hfReposDir(store);
  const tmp = join(root, `.tmp-${randomBytes(8).toString("hex")}`);
  await mkdir(tmp, { recursive: true });
  const base = repoFilesBase(store, req.source);
  const fetchOne = async (f: TreeEntry, onBytes?: (completed: number) => void): Promise<HfFile> => {
    const sha256 = f.lfs?.oid;
    try {
      const got = await store.downloadFile(`${base}/${encodeURIComponent(f.path)}`, join(tmp, f.path), {
        expectedSha256: sha256,
        signal: req.signal,
        label: `${req.name} (${f.path})`,
        restricted: req.restricted,
        onProgress: (p) => onBytes?.(p.completed),
      });
      if (got.size !== f.size) throw new Error(`${got.size} bytes where the listing says ${f.size}`);
      return { name: f.path, sha256: got.sha256, size: got.size };
    } catch (err) {
      if (req.signal?.aborted) throw err;
      throw fail(`downloading ${f.path}`, isModelError(err) ? err.message : (err as Error).message);
    }
  };
  try {
    const small = await Promise.all(listed.filter((f) => !f.lfs).map((f) => fetchOne(f)));
    const weights = listed.filter((f) => f.lfs);
    const files = [...small, ...weights.map((f) => ({ name: f.path, sha256: f.lfs!.oid, size: f.size }))];
    const sha256 = hfDirSha256(files);
    await checkExpected(store, req, sha256);
    const dir = join(root, `sha256-${sha256}`);
    await holdDir(dir);
    // Held until the callers hold it themselves (their continuations run before the next turn).
    const held = () => setImmediate(() => void releaseDir(dir, false));
    try {
      if (await exists(dir)) {
        held();
        return { dir, sha256 };
      }
      if (await skipWeights?.(sha256)) {
        await releaseDir(dir, false);
        return { dir: null, sha256 };
      }
      const total = weights.reduce((sum, f) => sum + f.size, 0);
      let done = 0;
      for (const f of weights) {
        // "pulling": each caller names its own model (pullAndConvert).
        await fetchOne(f, (completed) =>
          req.onProgress({ status: "pulling", completed: done + completed, total }),
        );
        done += f.size;
      }
      req.onProgress({ status: "verifying sha256 digest" });
      await rename(tmp, dir).catch(async (err: unknown) => {
        // Another pull of the same files finished first: use its directory.
        if (!(await exists(dir))) throw err;
      });
      held();
      return { dir, sha256 };
    } catch (err) {
      await releaseDir(dir, false);
      throw err;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * A gateway names the sha256 this machine pulled before (the directory's, or for a later quantisation
 * the F16 GGUF made from it): other files under the same revision are refused, not silently served.
 */
async function checkExpected(store: ModelStore, req: HfRepoPull, sha256: string): Promise<void> {
  const expected = req.expectedSha256?.toLowerCase();
  if (expected === undefined || expected === sha256) return;
  const madeFrom = (await store.list()).some(
    (r) => r.format === "gguf" && r.sha256 === expected && r.converted_from?.sha256 === sha256,
  );
  if (madeFrom) return;
  throw new ModelError(
    "checksum_mismatch",
    `${req.source.text} changed since this deployment first pulled it (its files' sha256 is ${sha256}, not ${expected}); pin a revision (hf:${req.source.repo}${req.source.folder === "" ? "" : `/${req.source.folder}`}@COMMIT) or deploy it again`,
  );
}
