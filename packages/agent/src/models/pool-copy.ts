import { rm } from "node:fs/promises";
import {
  type InferencePullRequest,
  MACHINE_ID_HEADER,
  POOL_COPY_PATH,
  POOL_TICKET_HEADER,
  type PullProgress,
} from "@beta9/protocol";
import type { Dispatcher } from "undici";
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
  dispatcher?: Dispatcher | undefined;
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
  const gateway = access.gateway();
  if (!gateway) throw new ModelError("download_failed", "not connected to a gateway to fetch it from");
  const machine = access.machine();
  const made = offer.converted_from.converted_on;
  const status = `fetching ${name} from ${offer.machine_name}, which ${made ? `holds ${made}'s conversion` : "converted it"}`;
  const tmp = await store.tempBlobPath();
  try {
    const got = await store.downloadFile(new URL(`${POOL_COPY_PATH}/${offer.sha256}`, gateway).href, tmp, {
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
      restricted: false,
      headers: {
        authorization: `Bearer ${machine.token}`,
        [MACHINE_ID_HEADER]: machine.id,
        [POOL_TICKET_HEADER]: offer.ticket,
      },
      dispatcher: access.dispatcher,
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

/** The offer's provenance as this store keeps it; an offer this store cannot record is refused. */
function convertedFrom(offer: PoolOffer): ConvertedFrom {
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
