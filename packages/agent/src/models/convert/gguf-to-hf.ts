import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { isModelError, ModelError } from "../model-error.ts";
import { afterOthers } from "../shared-run.ts";
import { type ConvertedFrom, exists, type ModelStore, type PullProgress } from "../store.ts";
import {
  CONVERSION_FILE,
  converterPython,
  FAILURE_PREFIX,
  type HfFile,
  hashDir,
  hfDirSha256,
  pythonVersions,
} from "./hf-tools.ts";
import { ensureRoom, runTool } from "./run-tool.ts";

/*
 * GGUF → safetensors by transformers' own GGUF loader (it dequantises with gguf-py and undoes the q/k
 * row permutation llama.cpp applies), under Debian's torch 1.13 (README.md beside this file). The
 * result is a repository directory, kept content-addressed in <store>/safetensors/sha256-<hex>/ with
 * what it was made from in b9-conversion.json: it is as good as the GGUF it came from, never better.
 */

/** The dtypes the weights are written in; the GGUF's own precision is what they hold. */
export const GGUF_TO_HF_DTYPES = ["float16", "bfloat16", "float32"] as const;
export type GgufToHfDtype = (typeof GGUF_TO_HF_DTYPES)[number];

/**
 * How llama.cpp splits text before BPE for the pre-tokenizers named `llama-bpe` (Llama 3) and `qwen2`
 * (the same but one digit at a time), as Hugging Face tokenizers' Split takes them.
 */
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2_SPLIT = LLAMA3_SPLIT.replace(String.raw`\p{N}{1,3}`, String.raw`\p{N}`);

/*
 * transformers 4.46's loader, with what it gets wrong for llama.cpp's GGUFs set right:
 * - a GGUF without output.weight shares the embeddings (4.46 leaves lm_head random otherwise);
 * - a byte-level BPE tokenizer ("gpt2") comes back as a byte-fallback SPM hybrid with bos and eos
 *   swapped; it is rebuilt from the GGUF's vocabulary and merges with the pre-tokenizer its
 *   tokenizer.ggml.pre names (gpt-2, smollm, llama-bpe, qwen2), so that it splits text as llama.cpp
 *   does and llama.cpp's converter recognises it again;
 * - its tokenizer keeps the GGUF itself as "tokenizer.model", no sentencepiece model: dropped.
 */
export const RUN_DEQUANTIZE = `import os, sys
def main():
    gguf, out, dtype = sys.argv[1:4]
    import torch
    from gguf import GGUFReader
    from tokenizers import Regex, pre_tokenizers, processors
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast
    from transformers.integrations.ggml import GGUFGPTConverter
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint, read_field
    d, f = os.path.split(gguf)
    reader = GGUFReader(gguf)
    tied = all(t.name != "output.weight" for t in reader.tensors)
    print("b9-step: dequantizing", flush=True)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=getattr(torch, dtype), tie_word_embeddings=tied)
    print("b9-step: writing weights", flush=True)
    model.save_pretrained(out, safe_serialization=True)
    print("b9-step: writing tokenizer", flush=True)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    vocab = load_gguf_checkpoint(gguf)["tokenizer"]
    pre = (read_field(reader, "tokenizer.ggml.pre") or [None])[0]
    gpt2 = lambda first: first + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    split = lambda pattern: [pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    splits = {"gpt-2": gpt2([]), "smollm": gpt2([pre_tokenizers.Digits(individual_digits=True)]), "llama-bpe": split(${JSON.stringify(LLAMA3_SPLIT)}), "qwen2": split(${JSON.stringify(QWEN2_SPLIT)})}
    if vocab.get("tokenizer_type") == "gpt2" and pre in splits:
        backend = GGUFGPTConverter(vocab).converted()
        backend.pre_tokenizer = pre_tokenizers.Sequence(splits[pre])
        backend.add_special_tokens(list(tok._tokenizer.get_added_tokens_decoder().values()))
        token = lambda k: vocab["tokens"][vocab[k]] if vocab.get(k) is not None else None
        if (read_field(reader, "tokenizer.ggml.add_bos_token") or [False])[0]:
            bos = token("bos_token_id")
            backend.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab["bos_token_id"])])
        else:
            backend.post_processor = processors.ByteLevel(trim_offsets=False)
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=token("bos_token_id"), eos_token=token("eos_token_id"), unk_token=token("unk_token_id"), pad_token=token("pad_token_id"), chat_template=tok.chat_template, clean_up_tokenization_spaces=False)
    tok.save_pretrained(out)
    spm = os.path.join(out, "tokenizer.model")
    if os.path.exists(spm):
        with open(spm, "rb") as v:
            if v.read(4) == b"GGUF":
                os.remove(spm)
try:
    main()
except Exception as e:
    print("${FAILURE_PREFIX}" + type(e).__name__ + ": " + " ".join(str(e).split()), file=sys.stderr, flush=True)
    raise
`;

export interface GgufToHfRequest {
  /** The stored GGUF model to convert. */
  from: string;
  /** float16 (default), bfloat16 or float32. */
  dtype?: string | undefined;
  /** Whose model `from` is (a workspace id); absent, the machine's owner. */
  owner?: string | undefined;
  signal?: AbortSignal | undefined;
  /** "dequantizing", "writing weights", "writing tokenizer", as the tool gets there. */
  onProgress?: ((progress: PullProgress) => void) | undefined;
  pidfiles?: PidfileRegistry | undefined;
  /** The converter's Python (default BETA9_CONVERT_PYTHON, from scripts/convert-env). */
  python?: string | undefined;
}

/** A safetensors repository made from a stored GGUF. */
export interface HfModelDir {
  /** <store>/safetensors/sha256-<sha256>: config.json, tokenizer, model.safetensors. */
  dir: string;
  /** Over its files (hf-tools.ts, hfDirSha256): what safetensorsToGguf records as its origin. */
  sha256: string;
  files: HfFile[];
  owner: string | null;
  converted_from: ConvertedFrom;
}

/** Conversions running in this agent, by store, owner, source sha256, dtype and tool version. */
const inFlight = new Map<string, Promise<HfModelDir>>();

/** Where a store keeps repositories made by conversion. */
export function safetensorsDir(store: ModelStore): string {
  return join(store.dir, "safetensors");
}

/**
 * A finished conversion's folder `tmp` kept under `root` by the hash of its files, with
 * b9-conversion.json saying what it was made from and by what. The same bytes made before (by another
 * request of an owner) are kept once: the first.
 */
export async function keepConverted(
  tmp: string,
  root: string,
  made: { owner: string | null; converted_from: ConvertedFrom },
  signal?: AbortSignal,
  /** Its files as already checked (a copy whose every file's sha256 was verified): not hashed again. */
  known?: HfFile[],
): Promise<HfModelDir> {
  const files = known ?? (await hashDir(tmp, signal));
  const sha256 = hfDirSha256(files);
  const record = { sha256, files, ...made };
  await writeFile(join(tmp, CONVERSION_FILE), `${JSON.stringify(record, null, 2)}\n`);
  const dir = join(root, `sha256-${sha256}`);
  if (!(await exists(dir))) await rename(tmp, dir);
  return { ...record, dir };
}

/** The kept conversion of the same source, to the same target, by the same tool version, for `owner`. */
export async function findConverted(
  store: ModelStore,
  root: string,
  owner: string | null,
  want: ConvertedFrom,
): Promise<HfModelDir | undefined> {
  return (await listConvertedDirs(store, root)).find(
    (d) =>
      d.owner === owner &&
      d.converted_from.sha256 === want.sha256 &&
      d.converted_from.target === want.target &&
      d.converted_from.converter.version === want.converter.version,
  );
}

/** The stored repositories converted from GGUFs (under `root`), as b9-conversion.json describes them. */
export async function listConvertedDirs(
  store: ModelStore,
  root = safetensorsDir(store),
): Promise<HfModelDir[]> {
  const names = await readdir(root).catch(() => [] as string[]);
  const dirs: HfModelDir[] = [];
  for (const name of names.filter((n) => /^sha256-[0-9a-f]{64}$/.test(n))) {
    const text = await readFile(join(root, name, CONVERSION_FILE), "utf8").catch(() => undefined);
    if (text !== undefined) dirs.push({ ...(JSON.parse(text) as HfModelDir), dir: join(root, name) });
  }
  return dirs;
}

/**
 * Dequantise the stored GGUF `from` into a safetensors repository. The same source (by sha256) already
 * converted to the same dtype by the same tool for the same owner is reused, never converted twice; a
 * failure names the model, the step and the reason, and keeps nothing.
 */
export async function ggufToSafetensors(store: ModelStore, req: GgufToHfRequest): Promise<HfModelDir> {
  const wanted = (req.dtype ?? "float16").trim().toLowerCase();
  const dtype = GGUF_TO_HF_DTYPES.find((t) => t === wanted);
  if (!dtype)
    throw new ModelError(
      "invalid_quantization",
      `cannot convert ${req.from} to safetensors in ${JSON.stringify(req.dtype)}: use one of ${GGUF_TO_HF_DTYPES.join(", ")}`,
    );
  const fail = (step: string, reason: string) =>
    new ModelError(
      "conversion_failed",
      `converting ${req.from} from GGUF to safetensors (${dtype}) failed at ${step}: ${reason}`,
    );
  const owner = req.owner ?? null;
  const origin = await store.get(req.from);
  if (!origin || (origin.owner ?? null) !== owner)
    throw new ModelError(
      "model_not_found",
      `there is no model ${req.from} on this machine to convert; pull it first`,
    );
  if (origin.format !== "gguf")
    throw fail("reading the model", `${req.from} is an Ollama model; only GGUF models of the store convert`);
  const python = converterPython(req.python);
  const version = `transformers GGUF loader; ${await pythonVersions(python)}`;
  const key = [store.dir, owner ?? "", origin.sha256, dtype, version].join("\0");
  const converted_from: ConvertedFrom = {
    name: origin.name,
    sha256: origin.sha256,
    format: "gguf",
    quantization: origin.quantization,
    target: dtype,
    converter: { tool: "transformers", version, args: ["--dtype", dtype] },
  };
  return afterOthers(inFlight, key, () =>
    convert(store, req, {
      owner,
      converted_from,
      python,
      fail,
      parameterCount: origin.parameter_count ?? null,
    }),
  );
}

async function convert(
  store: ModelStore,
  req: GgufToHfRequest,
  at: {
    owner: string | null;
    converted_from: ConvertedFrom;
    python: string;
    fail: (step: string, reason: string) => ModelError;
    /** The stored GGUF's, as read by the caller (null when unknown: no disk check). */
    parameterCount: number | null;
  },
): Promise<HfModelDir> {
  const { owner, converted_from, python, fail } = at;
  const progress = req.onProgress ?? (() => {});
  const done = await findConverted(store, safetensorsDir(store), owner, converted_from);
  if (done) return done;

  // Through resolve: weights gone or changed since they were hashed must not be converted under that hash.
  const input = (await store.resolve(converted_from.name)).path;
  if (!input) throw fail("reading the model", `${req.from} has no weights file on this machine`);
  const root = safetensorsDir(store);
  await mkdir(root, { recursive: true });
  // The weights at the target dtype: 2 bytes a parameter (4 for float32), the tokenizer aside.
  const params = at.parameterCount;
  if (params !== null)
    await ensureRoom(
      root,
      params * (converted_from.target === "float32" ? 4 : 2),
      `converting ${req.from} from GGUF to safetensors (${converted_from.target})`,
    );
  const tmp = join(root, `.tmp-${randomBytes(8).toString("hex")}`);
  let step = "starting the converter";
  let said: string | undefined;
  try {
    const out = await runTool({
      name: "gguf-to-safetensors",
      command: python,
      args: ["-c", RUN_DEQUANTIZE, input, tmp, converted_from.target],
      signal: req.signal,
      pidfiles: req.pidfiles,
      onLine: (line) => {
        if (line.startsWith("b9-step: ")) {
          step = line.slice("b9-step: ".length);
          progress({ status: step });
        } else if (line.startsWith(FAILURE_PREFIX)) said = line.slice(FAILURE_PREFIX.length);
      },
    });
    if (!out.ok && out.stopped) throw fail(step, "the conversion was stopped");
    if (!out.ok) throw fail(step, said ?? out.said);
    progress({ status: "hashing" });
    return await keepConverted(tmp, root, { owner, converted_from }, req.signal);
  } catch (err) {
    if (isModelError(err)) throw err;
    throw fail("storing the result", (err as Error).message);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
