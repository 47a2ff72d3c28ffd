import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { PullProgress } from "@beta9/protocol";
import { fetch } from "undici";
import { HF_TO_GGUF_TYPES, safetensorsToGguf } from "./convert/hf-to-gguf.ts";
import { converterPython, exists, type HfFile, hfDirSha256, READ } from "./convert/hf-tools.ts";
import { parseQuantizationType, quantizeModel } from "./convert/quantize.ts";
import { isModelError, ModelError } from "./model-error.ts";
import type { HfRepoSource } from "./sources.ts";
import type { GgufModelRecord, ModelStore } from "./store.ts";

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
}

interface TreeEntry {
  type: string;
  path: string;
  size: number;
  lfs?: { oid: string; size: number };
}

/** Where downloaded repositories are kept, by the hash of their files (hf-tools' hfDirSha256). */
export function hfReposDir(store: ModelStore): string {
  return join(store.dir, "hf-repos");
}

const TOKENIZERS = ["tokenizer.json", "tokenizer.model"];

/** Pulls running in this agent, by store, owner, source, name and type: concurrent requests share one. */
const inFlight = new Map<string, Promise<GgufModelRecord>>();
/** Repository downloads running, by store and source: two names from one repository fetch it once. */
const fetching = new Map<string, Promise<{ dir: string; sha256: string }>>();

function shared<T>(map: Map<string, Promise<T>>, key: string, run: () => Promise<T>): Promise<T> {
  const running = map.get(key);
  if (running) return running;
  const started = run().finally(() => {
    if (map.get(key) === started) map.delete(key);
  });
  map.set(key, started);
  return started;
}

/** Pull the repository and convert it to the GGUF `name`; never twice for the same files and type. */
export async function pullHfRepo(store: ModelStore, req: HfRepoPull): Promise<GgufModelRecord> {
  // Before any byte moves: a machine that cannot convert says so and how to fix it.
  converterPython(undefined);
  const target = req.quantize === undefined ? "F16" : parseQuantizationType(req.quantize, req.name);
  const key = [store.dir, req.owner ?? "", req.source.text, req.name, target].join("\0");
  return shared(inFlight, key, () => pullAndConvert(store, req, target));
}

async function pullAndConvert(store: ModelStore, req: HfRepoPull, target: string): Promise<GgufModelRecord> {
  const { name, source } = req;
  const fail = (step: string, reason: string) =>
    new ModelError("conversion_failed", `pulling ${name} from ${source.text} failed at ${step}: ${reason}`);
  const repo = await shared(fetching, [store.dir, source.text].join("\0"), () => fetchRepo(store, req, fail));
  const direct = HF_TO_GGUF_TYPES.find((t) => t === target);
  const converting = `converting ${name} from safetensors`;
  const f16 = await safetensorsToGguf(store, {
    dir: repo.dir,
    name: direct ? name : req.sourceName,
    source: source.text,
    type: direct ?? "F16",
    owner: req.owner,
    signal: req.signal,
    onProgress: (p) =>
      req.onProgress(
        p.status === "converting"
          ? { status: converting, completed: p.completed, total: p.total, unit: "tensors" }
          : { status: p.status },
      ),
  });
  if (direct) return f16;
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

/** The repository's files as the tree API lists them: the top level, what a conversion reads. */
async function listRepo(
  store: ModelStore,
  req: HfRepoPull,
  fail: (step: string, reason: string) => ModelError,
): Promise<TreeEntry[]> {
  const { repo, revision } = req.source;
  const url = `${store.huggingFaceBaseUrl.replace(/\/+$/, "")}/api/models/${repo}/tree/${encodeURIComponent(revision)}`;
  let entries: unknown;
  try {
    const res = await fetch(url, { signal: req.signal, dispatcher: store.dispatcherFor(req.restricted) });
    if (res.status === 404 || res.status === 401)
      throw new Error(`${url} answered ${res.status}: no such repository or revision (or it is private)`);
    if (!res.ok) throw new Error(`${url} answered ${res.status}`);
    entries = JSON.parse(await res.text());
  } catch (err) {
    if (req.signal?.aborted) throw err;
    throw fail("listing the repository", (err as Error).message);
  }
  if (!Array.isArray(entries)) throw fail("listing the repository", `${url} did not answer a file list`);
  const files = (entries as TreeEntry[]).filter(
    (e) =>
      e?.type === "file" &&
      typeof e.path === "string" &&
      !e.path.includes("/") &&
      Number.isSafeInteger(e.size) &&
      READ.test(e.path),
  );
  const names = files.map((f) => f.path);
  if (!names.includes("config.json"))
    throw fail("listing the repository", "the repository has no config.json");
  if (!names.some((n) => TOKENIZERS.includes(n)))
    throw fail(
      "listing the repository",
      "the repository has no tokenizer (tokenizer.json or tokenizer.model); a model without one cannot be served",
    );
  if (!names.some((n) => n.endsWith(".safetensors")))
    throw fail("listing the repository", "the repository has no .safetensors files");
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
): Promise<{ dir: string; sha256: string }> {
  req.onProgress({ status: "pulling manifest" });
  const listed = await listRepo(store, req, fail);
  const root = hfReposDir(store);
  const tmp = join(root, `.tmp-${randomBytes(8).toString("hex")}`);
  await mkdir(tmp, { recursive: true });
  const base = `${store.huggingFaceBaseUrl.replace(/\/+$/, "")}/${req.source.repo}/resolve/${encodeURIComponent(req.source.revision)}`;
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
    if (await exists(dir)) return { dir, sha256 };
    const total = weights.reduce((sum, f) => sum + f.size, 0);
    let done = 0;
    for (const f of weights) {
      await fetchOne(f, (completed) =>
        req.onProgress({ status: `pulling ${req.name}`, completed: done + completed, total }),
      );
      done += f.size;
    }
    req.onProgress({ status: "verifying sha256 digest" });
    await rename(tmp, dir).catch(async (err: unknown) => {
      // Another pull of the same files finished first: use its directory.
      if (!(await exists(dir))) throw err;
    });
    return { dir, sha256 };
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
    `${req.source.text} changed since this deployment first pulled it (its files' sha256 is ${sha256}, not ${expected}); pin a revision (hf:${req.source.repo}@COMMIT) or deploy it again`,
  );
}
