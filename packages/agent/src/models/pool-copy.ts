import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { LazyDispatcher } from "@beta9/http/undici-lazy";
import {
  type InferencePullRequest,
  MACHINE_ID_HEADER,
  POOL_COPY_PATH,
  POOL_TICKET_HEADER,
  type PoolDirOffer,
  type PullProgress,
} from "@beta9/protocol";
import { type HfModelDir, keepConverted, listConvertedDirs } from "./convert/gguf-to-hf.ts";
import { CONVERSION_FILE, type HfFile, hfDirSha256 } from "./convert/hf-tools.ts";
import { ModelError } from "./model-error.ts";
import { joinRun, type SharedRun } from "./shared-run.ts";
import type { ConvertedFrom, GgufModelRecord, ModelStore } from "./store.ts";

/** Another machine's conversion of a deployment, as the gateway offers it with a pull. */
export type PoolOffer = NonNullable<InferencePullRequest["pool"]>;

/** How this machine reaches the gateway whose pull it is serving: its address now, its credential, its CA. */
export interface PoolAccess {
  /** The gateway the channel is open to (the one that sent the pull and its ticket); undefined when none is. */
  gateway(): string | undefined;
  /** The machine's id and credential, to show with the ticket. */
  machine(): { id: string; token: string };
  /** For a gateway whose certificate needs the configured CA. */
  dispatcher?: LazyDispatcher | undefined;
}

/**
 * Fetch `offer`'s bytes (another machine's conversion of this deployment) through the gateway and store
 * them as `name`, with the conversion's provenance and the machine it came from. The bytes must hash to
 * `offer.sha256` (a machine that serves other bytes fails here, `checksum_mismatch`); the download is
 * resumable like a pull's, and a failure keeps no record.
 */
export async function fetchPoolCopy(
  store: ModelStore,
  access: PoolAccess,
  req: {
    name: string;
    source: string;
    offer: PoolOffer;
    owner: string | undefined;
    signal: AbortSignal;
    onProgress: (p: PullProgress) => void;
  },
): Promise<GgufModelRecord> {
  // Two pulls of one copy at once (a cold start beside `b9 model pull`, or two deployments of the same
  // source and type) share one download; a second name links the first one's blob.
  const key = [store.dir, req.offer.sha256, req.owner ?? ""].join("\u0000");
  const record = await joinRun(copying, key, req, (signal, onProgress) =>
    copyOnce(store, access, { ...req, signal, onProgress }),
  );
  if (record.name === req.name) return record;
  return store.linkConverted(
    record,
    req.name,
    { source: req.source, converted_from: record.converted_from! },
    { owner: req.owner, signal: req.signal },
  );
}

const copying = new Map<string, SharedRun<GgufModelRecord>>();

async function copyOnce(
  store: ModelStore,
  access: PoolAccess,
  req: Parameters<typeof fetchPoolCopy>[2],
): Promise<GgufModelRecord> {
  const { offer, name } = req;
  const from = convertedFrom(offer);
  const made = offer.converted_from.converted_on;
  const status = `fetching ${name} from ${offer.machine_name}, which ${made ? `holds ${made}'s conversion` : "converted it"}`;
  const tmp = await store.tempBlobPath();
  try {
    const got = await fromGateway(store, access, offer, undefined, tmp, {
      expectedSha256: offer.sha256,
      signal: req.signal,
      label: `${name} (converted on ${offer.machine_name})`,
      onProgress: (p) =>
        req.onProgress({
          status,
          completed: p.completed,
          total: p.total ?? offer.size,
          digest: `sha256:${offer.sha256}`,
        }),
    });
    return await store.addConverted(
      name,
      got.path,
      { source: req.source, converted_from: from },
      { owner: req.owner, signal: req.signal, verifiedSha256: got.sha256 },
    );
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * Fetch `offer` (another machine's converted directory: safetensors for vLLM/SGLang, or MLX) through
 * the gateway into `root`, kept as a conversion of this store (b9-conversion.json naming the machine
 * that made it): its file list first, which must hash to `offer.sha256`, then each file, checked
 * against its sha256 in that list. The directory appears whole or not at all. A directory with that
 * sha256 kept here already for `owner` is used as it is.
 */
export async function fetchPoolDir(
  store: ModelStore,
  access: PoolAccess,
  req: {
    name: string;
    root: string;
    offer: PoolDirOffer;
    owner: string | null;
    signal?: AbortSignal | undefined;
  },
): Promise<HfModelDir> {
  const { offer, owner } = req;
  const here = (await listConvertedDirs(store, req.root)).find(
    (d) => d.sha256 === offer.sha256 && d.owner === owner,
  );
  if (here) return here;
  const from = convertedFrom(offer);
  const fetchFile = (file: string, dest: string, expectedSha256?: string) =>
    fromGateway(store, access, offer, file, dest, {
      expectedSha256,
      signal: req.signal,
      label: `${req.name} (${offer.format}, converted on ${from.converted_on})`,
    });
  await mkdir(req.root, { recursive: true });
  const tmp = join(req.root, `.tmp-${randomBytes(8).toString("hex")}`);
  await mkdir(tmp);
  try {
    const listing = join(tmp, CONVERSION_FILE);
    await fetchFile(CONVERSION_FILE, listing);
    const files = listedFiles(await readFile(listing, "utf8"));
    if (hfDirSha256(files) !== offer.sha256)
      throw new ModelError(
        "checksum_mismatch",
        `${offer.machine_name}'s list of files does not hash to the conversion's sha256 ${offer.sha256}`,
      );
    await rm(listing);
    for (const f of files) await fetchFile(f.name, join(tmp, f.name), f.sha256);
    return await keepConverted(tmp, req.root, { owner, converted_from: from }, req.signal, files);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Download `POOL_COPY_PATH/<sha256>` (a GGUF) or `POOL_COPY_PATH/<sha256>/<file>` (of a directory) from
 * the gateway this machine is connected to, showing its credential, its id and the offer's ticket.
 */
function fromGateway(
  store: ModelStore,
  access: PoolAccess,
  offer: PoolOffer | PoolDirOffer,
  file: string | undefined,
  dest: string,
  opts: Pick<Parameters<ModelStore["downloadFile"]>[2], "expectedSha256" | "signal" | "label" | "onProgress">,
): Promise<{ path: string; sha256: string; size: number }> {
  const gateway = access.gateway();
  if (!gateway) throw new ModelError("download_failed", "not connected to a gateway to fetch it from");
  const machine = access.machine();
  const path = `${POOL_COPY_PATH}/${offer.sha256}${file === undefined ? "" : `/${encodeURIComponent(file)}`}`;
  return store.downloadFile(new URL(path, gateway).href, dest, {
    ...opts,
    restricted: false,
    headers: {
      authorization: `Bearer ${machine.token}`,
      [MACHINE_ID_HEADER]: machine.id,
      [POOL_TICKET_HEADER]: offer.ticket,
    },
    dispatcher: access.dispatcher,
  });
}

/** The files a b9-conversion.json lists: plain names in the directory, each with its sha256 and size. */
function listedFiles(text: string): HfFile[] {
  const bad = (why: string) => new ModelError("checksum_mismatch", `the conversion's file list ${why}`);
  let files: unknown;
  try {
    files = (JSON.parse(text) as { files?: unknown }).files;
  } catch {
    throw bad("is not JSON");
  }
  if (!Array.isArray(files) || files.length === 0 || files.length > 10_000) throw bad("lists no files");
  for (const f of files as HfFile[]) {
    if (
      typeof f?.name !== "string" ||
      !/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/.test(f.name) ||
      f.name === CONVERSION_FILE ||
      typeof f.sha256 !== "string" ||
      !/^[a-f0-9]{64}$/.test(f.sha256) ||
      !Number.isSafeInteger(f.size) ||
      f.size < 0
    )
      throw bad(
        `has an entry that is no plain file name with its sha256 and size: ${JSON.stringify(f).slice(0, 200)}`,
      );
  }
  return (files as HfFile[]).map((f) => ({ name: f.name, sha256: f.sha256, size: f.size }));
}

/** The offer's provenance as this store keeps it; an offer this store cannot record is refused. */
function convertedFrom(offer: PoolOffer | PoolDirOffer): ConvertedFrom {
  const c = offer.converted_from;
  if (c.format !== "gguf" && c.format !== "safetensors")
    throw new ModelError(
      "conversion_failed",
      `the pool's copy was converted from ${c.format}, not GGUF or safetensors`,
    );
  return {
    name: c.name,
    sha256: c.sha256,
    format: c.format,
    quantization: c.quantization,
    target: c.target,
    converter: { tool: c.converter.tool, version: c.converter.version, args: c.converter.args ?? [] },
    // A holder may itself hold a copy: the record names the machine that made the conversion.
    converted_on: c.converted_on ?? offer.machine_name,
  };
}
