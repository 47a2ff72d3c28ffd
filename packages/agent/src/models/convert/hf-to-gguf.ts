import { rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { BITS_PER_WEIGHT } from "@beta9/protocol";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { isModelError, ModelError } from "../model-error.ts";
import { joinRun, type SharedRun } from "../shared-run.ts";
import type { GgufModelRecord, ModelStore, PullProgress } from "../store.ts";
import { checkHfDir, converterPython, ensureConvertScript, pythonVersions } from "./hf-tools.ts";
import { engineLlama, type LlamaSource, llamaVersion } from "./llama-tools.ts";
import { ensureRoom, runTool } from "./run-tool.ts";

/*
 * safetensors → GGUF by llama.cpp's own convert_hf_to_gguf.py at the engine's release (README.md beside
 * this file), under Debian's torch 1.13. The result is a model of the store like a quantised one:
 * content-addressed, its record naming the repository's files hash and the tool.
 */

/** What convert_hf_to_gguf.py writes itself; any other type is this then quantizeModel. */
export const HF_TO_GGUF_TYPES = ["F16", "BF16", "Q8_0", "F32"] as const;
export type HfToGgufType = (typeof HF_TO_GGUF_TYPES)[number];

/**
 * torch 1.13 lacks the float8 types (torch 2.1) that the script names in its dtype tables; stand-ins
 * that no tensor has let it run unmodified, and a float8 checkpoint still fails to load, as it must.
 */
export const RUN_CONVERT = `import os, runpy, sys
import torch
for n in ("float8_e4m3fn", "float8_e5m2"):
    if not hasattr(torch, n):
        setattr(torch, n, object())
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
`;

export interface HfToGgufRequest {
  /** A local safetensors repository directory (config.json, tokenizer, *.safetensors). */
  dir: string;
  /** The name the result is stored under. */
  name: string;
  /** The origin as people name it (hf:ORG/REPO@REV); default the directory's name. */
  source?: string | undefined;
  /** F16 (default), BF16, Q8_0 or F32; case does not matter. */
  type?: string | undefined;
  /** Whose model the result is (a workspace id); absent, the machine's owner. */
  owner?: string | undefined;
  signal?: AbortSignal | undefined;
  /** "converting" with tensors done / total, as the tool reports them. */
  onProgress?: ((progress: PullProgress) => void) | undefined;
  pidfiles?: PidfileRegistry | undefined;
  /** The converter's Python (default BETA9_CONVERT_PYTHON, from scripts/convert-env). */
  python?: string | undefined;
  /** Found once per agent by default. */
  llama?: LlamaSource | undefined;
}

/** Conversions running in this agent, by store, owner, repository hash, type and tool version. */
const inFlight = new Map<string, SharedRun<GgufModelRecord>>();

/**
 * Convert the safetensors repository `dir` to a GGUF of the store named `name`. The same files (by
 * hash) already converted to the same type by the same tool for the same owner are reused, never
 * converted twice; a failure names the model, the step and the reason, and keeps nothing.
 */
export async function safetensorsToGguf(store: ModelStore, req: HfToGgufRequest): Promise<GgufModelRecord> {
  const model = req.source ?? basename(req.dir);
  const wanted = (req.type ?? "F16").trim().toUpperCase();
  const type = HF_TO_GGUF_TYPES.find((t) => t === wanted);
  if (!type)
    throw new ModelError(
      "invalid_quantization",
      `cannot convert ${model} to GGUF ${JSON.stringify(req.type)}: llama.cpp's converter writes ${HF_TO_GGUF_TYPES.join(", ")}; convert to F16, then quantize to the type you want`,
    );
  const fail = (step: string, reason: string) =>
    new ModelError(
      "conversion_failed",
      `converting ${model} from safetensors to GGUF ${type} as ${req.name} failed at ${step}: ${reason}`,
    );
  const python = converterPython(req.python);
  const repo = await checkHfDir(req.dir, fail, req.signal);
  const llama = req.llama ?? (await engineLlama());
  const version = `convert_hf_to_gguf.py ${llamaVersion(llama)}; ${await pythonVersions(python)}`;
  const owner = req.owner ?? null;
  const key = [store.dir, owner ?? "", repo.sha256, type, version].join("\0");
  // Concurrent requests for the same conversion share one run, each with its progress.
  const made = await joinRun(
    inFlight,
    key,
    { signal: req.signal, onProgress: req.onProgress ?? (() => {}) },
    (signal, onProgress) =>
      convert(
        store,
        { ...req, signal, onProgress },
        { model, type, owner, repo, version, llama, python, fail },
      ),
  );
  if (made.name === req.name || !made.converted_from) return made;
  // Made under the name of the request that started it: this one's is a link of the same blob.
  return store
    .linkConverted(
      made,
      req.name,
      { source: req.source ?? req.dir, converted_from: { ...made.converted_from, name: model } },
      req,
    )
    .catch((err: unknown) => {
      throw isModelError(err) ? err : fail("storing the result", (err as Error).message);
    });
}

async function convert(
  store: ModelStore,
  req: HfToGgufRequest,
  at: {
    model: string;
    type: HfToGgufType;
    owner: string | null;
    repo: Awaited<ReturnType<typeof checkHfDir>>;
    version: string;
    llama: LlamaSource;
    python: string;
    fail: (step: string, reason: string) => ModelError;
  },
): Promise<GgufModelRecord> {
  const { model, type, owner, repo, version, llama, python, fail } = at;
  const progress = req.onProgress ?? (() => {});
  const args = ["--outtype", type.toLowerCase()];
  const convertedFrom = {
    name: model,
    sha256: repo.sha256,
    format: "safetensors" as const,
    quantization: null,
    target: type,
    converter: { tool: "convert_hf_to_gguf.py", version, args },
  };
  const done = (await store.list()).find(
    (r): r is GgufModelRecord =>
      r.format === "gguf" &&
      (r.owner ?? null) === owner &&
      r.converted_from?.format === "safetensors" &&
      r.converted_from.sha256 === repo.sha256 &&
      r.converted_from.target === type &&
      r.converted_from.converter.version === version,
  );
  if (done?.name === req.name) return done;
  if (done) {
    // The same bytes under another name: a link of the stored blob.
    progress({ status: `reusing ${done.name}` });
    return store
      .linkConverted(done, req.name, { source: req.source ?? req.dir, converted_from: convertedFrom }, req)
      .catch((err: unknown) => {
        throw isModelError(err) ? err : fail("storing the result", (err as Error).message);
      });
  }

  const tmp = await store.tempBlobPath();
  // The weights at the type asked for; the tokenizer and metadata are small beside them.
  await ensureRoom(
    dirname(tmp),
    Math.ceil((repo.parameters * (BITS_PER_WEIGHT[type] ?? 32)) / 8),
    `converting ${model} from safetensors to GGUF ${type}`,
  );
  try {
    progress({ status: "preparing convert_hf_to_gguf.py" });
    const script = await ensureConvertScript(llama, {
      toolsDir: join(store.dir, "tools"),
      signal: req.signal,
      pidfiles: req.pidfiles,
    });
    let tensors = 0;
    const out = await runTool({
      name: "convert_hf_to_gguf.py",
      command: python,
      args: ["-c", RUN_CONVERT, script, req.dir, "--outfile", tmp, ...args],
      signal: req.signal,
      pidfiles: req.pidfiles,
      onLine: (line) => {
        // One line per tensor as it is planned ("INFO:hf-to-gguf:blk.0.attn_q.weight, torch.float32 --> F16, ...").
        if (/^INFO:hf-to-gguf:\S+,\s+\S+ --> /.test(line))
          progress({
            status: "converting",
            completed: Math.min(++tensors, repo.tensors),
            total: repo.tensors,
          });
      },
    });
    if (!out.ok && out.stopped) throw fail("converting", "the conversion was stopped");
    if (!out.ok) throw fail("converting", out.said);
    progress({ status: "writing manifest" });
    return await store.addConverted(
      req.name,
      tmp,
      { source: req.source ?? req.dir, converted_from: convertedFrom },
      req,
    );
  } catch (err) {
    if (isModelError(err)) throw err;
    throw fail("storing the result", (err as Error).message);
  } finally {
    await rm(tmp, { force: true });
  }
}
