import { mkdir, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import {
  BITS_PER_WEIGHT,
  parseQuantization,
  QUANTIZATION_TYPES,
  type QuantizationType,
} from "@beta9/protocol";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { isModelError, ModelError } from "../model-error.ts";
import { joinRun, type SharedRun } from "../shared-run.ts";
import type { GgufModelRecord, ModelStore, PullProgress } from "../store.ts";
import { engineLlama, ensureQuantizeTool, type LlamaSource, llamaVersion } from "./llama-tools.ts";
import { ensureRoom, runTool } from "./run-tool.ts";

/*
 * GGUF → GGUF at another quantisation, by llama.cpp's own quantize tool at the engine's release. The
 * result is a model of the store like a pulled one (content-addressed, its record linking it to the
 * origin and the tool), written to a temporary file that becomes a blob only when complete.
 */

export { QUANTIZATION_TYPES, type QuantizationType };

/** Sources at these precisions lose nothing to a first quantisation; any other is requantised. */
const FULL_PRECISION = new Set(["F32", "F16", "BF16"]);

export interface QuantizeRequest {
  /** The stored GGUF model to quantise. */
  from: string;
  /** The name the result is stored under. */
  name: string;
  /** A llama.cpp quantisation type ("Q4_K_M"); case does not matter. */
  type: string;
  /** Whose model the result is (a workspace id); absent, the machine's owner. It must own `from` too. */
  owner?: string | undefined;
  signal?: AbortSignal | undefined;
  /** "quantizing" with tensors done / total, as the tool reports them. */
  onProgress?: ((progress: PullProgress) => void) | undefined;
  threads?: number | undefined;
  pidfiles?: PidfileRegistry | undefined;
  /** Found once per agent by default. */
  llama?: LlamaSource | undefined;
}

/** Validate `type` against the tool's list, with a sentence that says what to use instead. */
export function parseQuantizationType(type: string, model: string): QuantizationType {
  const parsed = parseQuantization(type, model);
  if (!parsed.ok) throw new ModelError("invalid_quantization", parsed.message);
  return parsed.type;
}

function failed(req: QuantizeRequest, type: string, reason: string): ModelError {
  return new ModelError(
    "conversion_failed",
    `quantizing ${req.from} to ${type} as ${req.name} failed: ${reason}`,
  );
}

/** Stop early when the output cannot fit (its size from the parameter count and the type's bits). */
async function checkRoom(dir: string, origin: GgufModelRecord, type: QuantizationType, req: QuantizeRequest) {
  const params = origin.parameter_count;
  const bits = BITS_PER_WEIGHT[type];
  if (params === null || bits === undefined) return;
  await ensureRoom(dir, Math.ceil((params * bits) / 8), `quantizing ${req.from} to ${type}`);
}

/**
 * Quantise the stored model `from` to `type`, stored as `name`. The same source (by sha256) already
 * quantised to the same type by the same tool for the same owner is reused, never converted twice.
 */
export async function quantizeModel(store: ModelStore, req: QuantizeRequest): Promise<GgufModelRecord> {
  const type = parseQuantizationType(req.type, req.from);
  const owner = req.owner ?? null;
  const origin = await store.get(req.from);
  if (!origin || (origin.owner ?? null) !== owner)
    throw new ModelError(
      "model_not_found",
      `there is no model ${req.from} on this machine to quantize; pull it first`,
    );
  if (origin.format !== "gguf")
    throw failed(req, type, `${req.from} is an Ollama model; only GGUF models of the store can be quantized`);
  const llama = req.llama ?? (await engineLlama());
  const version = llamaVersion(llama);
  const key = [store.dir, owner ?? "", origin.sha256, type, version].join("\0");
  // Concurrent requests for the same conversion share one run, each with its progress.
  const made = await joinRun(
    inFlight,
    key,
    { signal: req.signal, onProgress: req.onProgress ?? (() => {}) },
    (signal, onProgress) =>
      convert(store, { ...req, signal, onProgress }, { type, owner, origin, version, llama }),
  );
  if (made.name === req.name || !made.converted_from) return made;
  // Made under the name of the request that started it: this one's is a link of the same blob.
  return store.linkConverted(
    made,
    req.name,
    { source: origin.source, converted_from: made.converted_from },
    req,
  );
}

/** Conversions running in this agent, by store, owner, source sha256, type and tool version. */
const inFlight = new Map<string, SharedRun<GgufModelRecord>>();

async function convert(
  store: ModelStore,
  req: QuantizeRequest,
  at: {
    type: QuantizationType;
    owner: string | null;
    origin: GgufModelRecord;
    version: string;
    llama: LlamaSource;
  },
): Promise<GgufModelRecord> {
  const { type, owner, origin, version, llama } = at;
  const progress = req.onProgress ?? (() => {});

  const done = (await store.list()).find(
    (r): r is GgufModelRecord =>
      r.format === "gguf" &&
      (r.owner ?? null) === owner &&
      r.converted_from?.sha256 === origin.sha256 &&
      r.converted_from.target === type &&
      r.converted_from.converter.version === version,
  );
  if (done?.name === req.name) return done;
  if (done) {
    // Same bytes under another name: a link of the stored blob, hashed again as it is recorded.
    progress({ status: `reusing ${done.name}` });
    return store.linkConverted(
      done,
      req.name,
      { source: origin.source, converted_from: done.converted_from! },
      req,
    );
  }

  const blobs = join(store.dir, "blobs");
  await mkdir(blobs, { recursive: true });
  await checkRoom(blobs, origin, type, req);
  progress({ status: "preparing llama-quantize" });
  const tool = await ensureQuantizeTool(llama, {
    toolsDir: join(store.dir, "tools"),
    signal: req.signal,
    pidfiles: req.pidfiles,
  });
  // Through resolve: weights gone or changed since they were hashed must not be converted under that hash.
  const input = (await store.resolve(origin.name)).path ?? store.blobPath(origin.sha256);
  const requantize = origin.quantization === null || !FULL_PRECISION.has(origin.quantization);
  const threads = String(req.threads ?? Math.max(1, availableParallelism()));
  const tmp = await store.tempBlobPath();
  // Recorded without the machine's paths: they say nothing about the model.
  const args = [...(requantize ? ["--allow-requantize"] : []), type];
  try {
    const out = await runTool({
      name: "llama-quantize",
      command: tool,
      args: [...(requantize ? ["--allow-requantize"] : []), input, tmp, type, threads],
      signal: req.signal,
      pidfiles: req.pidfiles,
      onLine: (line) => {
        const m = /^\[\s*(\d+)\/\s*(\d+)\]/.exec(line);
        if (m) progress({ status: "quantizing", completed: Number(m[1]), total: Number(m[2]) });
      },
    });
    if (!out.ok && out.stopped) throw failed(req, type, "the conversion was stopped");
    if (!out.ok) throw failed(req, type, out.said);
    progress({ status: "writing manifest" });
    return await store.addConverted(
      req.name,
      tmp,
      {
        source: origin.source,
        converted_from: {
          name: origin.name,
          sha256: origin.sha256,
          format: "gguf",
          quantization: origin.quantization,
          target: type,
          converter: { tool: "llama-quantize", version, args },
        },
      },
      req,
    );
  } catch (err) {
    if (isModelError(err)) throw err;
    throw failed(req, type, (err as Error).message);
  } finally {
    await rm(tmp, { force: true });
  }
}
