import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { open, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { ModelError } from "../model-error.ts";
import { hashFile } from "../store.ts";
import { checkoutFromBundle, type LlamaSource, makeOnce } from "./llama-tools.ts";
import { runTool } from "./run-tool.ts";

/*
 * What both directions between Hugging Face safetensors repositories and GGUF share: the converter's
 * Python (Debian's torch 1.13 + scripts/requirements-convert.txt, made by scripts/convert-env), the
 * versions a record names, and a repository directory checked and hashed before any tool reads it.
 */

/** A wrapper's own line for why it failed, beside the traceback Python prints. */
export const FAILURE_PREFIX = "b9-error: ";

/** The converter's Python: given, or BETA9_CONVERT_PYTHON (the path scripts/convert-env prints). */
export function converterPython(given: string | undefined): string {
  const python = given ?? process.env.BETA9_CONVERT_PYTHON;
  if (!python)
    throw new ModelError(
      "converter_unavailable",
      "this machine has no model converter: install Debian's torch (`apt-get install python3-torch`), run scripts/convert-env and set BETA9_CONVERT_PYTHON to the python it prints",
    );
  return python;
}

const versions = new Map<string, Promise<string>>();

/** "torch 1.13.0a0, transformers 4.46.3, gguf 0.19.0": part of a record's converter version. */
export function pythonVersions(python: string): Promise<string> {
  let found = versions.get(python);
  if (!found) {
    const code =
      "import importlib.metadata as m\nprint(', '.join(f'{p} {m.version(p)}' for p in ('torch', 'transformers', 'gguf', 'safetensors')))";
    found = promisify(execFile)(python, ["-c", code], { env: { PATH: process.env.PATH, LANG: "C" } }).then(
      (r) => r.stdout.trim(),
      (err: Error) => {
        versions.delete(python);
        throw new ModelError(
          "converter_unavailable",
          `the model converter's Python ${python} cannot run or lacks its packages (run scripts/convert-env again): ${err.message.split("\n").at(-2) ?? err.message}`,
        );
      },
    );
    versions.set(python, found);
  }
  return found;
}

/** One file of a repository directory, as hashed. */
export interface HfFile {
  name: string;
  sha256: string;
  size: number;
}

/** A safetensors repository directory as the converters see it. */
export interface HfDir {
  /** sha256 of the sorted "sha256  name" lines of its files: the directory's content address. */
  sha256: string;
  files: HfFile[];
  /** config.json's architectures[0] ("LlamaForCausalLM"). */
  architecture: string;
  /** Tensors in all its safetensors files (the converter's progress counts them). */
  tensors: number;
  /** Weights in all of them: what the output's size follows. */
  parameters: number;
}

/** The files a conversion reads: weights, config, tokenizer; a README or a picture changes nothing. */
export const READ = /^(.*\.safetensors|.*\.json|tokenizer\.model|.*\.tiktoken|merges\.txt|vocab\.txt)$/;

export function hfDirSha256(files: readonly HfFile[]): string {
  const lines = [...files]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((f) => `${f.sha256}  ${f.name}\n`)
    .join("");
  return createHash("sha256").update(lines).digest("hex");
}

/**
 * Hash the files of a directory that `READ` names (not b9-conversion.json, which a conversion writes
 * about them).
 */
export async function hashDir(dir: string, signal?: AbortSignal): Promise<HfFile[]> {
  const files: HfFile[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !READ.test(entry.name) || entry.name === CONVERSION_FILE) continue;
    const path = join(dir, entry.name);
    files.push({
      name: entry.name,
      sha256: await hashFile(path, () => {}, signal),
      size: (await stat(path)).size,
    });
  }
  return files.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** What a conversion wrote beside its output files: origin, tool, files. */
export const CONVERSION_FILE = "b9-conversion.json";

/** The number of tensors in a safetensors file, or why it is not a whole one. */
/** Tensors and weights (the product of each tensor's shape) of one safetensors file, checked whole. */
async function safetensorsTensors(path: string): Promise<{ tensors: number; parameters: number }> {
  const fh = await open(path, "r");
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(8);
    if (size < 8 || (await fh.read(head, 0, 8, 0)).bytesRead < 8)
      throw new Error("it is shorter than its header");
    const length = Number(head.readBigUInt64LE(0));
    if (length > 100 * 1024 ** 2 || 8 + length > size)
      throw new Error("its header runs past the end of the file");
    const json = Buffer.alloc(length);
    await fh.read(json, 0, length, 8);
    const header = JSON.parse(json.toString("utf8")) as Record<
      string,
      { data_offsets?: [number, number]; shape?: number[] }
    >;
    let end = 0;
    let tensors = 0;
    let parameters = 0;
    for (const [name, t] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      tensors++;
      end = Math.max(end, t.data_offsets?.[1] ?? 0);
      parameters += (t.shape ?? []).reduce((n, d) => n * d, 1);
    }
    const want = 8 + length + end;
    if (size < want) throw new Error(`it is cut short: ${size} bytes of the ${want} its header describes`);
    return { tensors, parameters };
  } finally {
    await fh.close();
  }
}

/**
 * Check a repository directory before a tool reads it, so the reason is said plainly: config.json
 * with an architecture, a tokenizer, whole safetensors files. `fail(step, reason)` makes the error.
 */
export async function checkHfDir(
  dir: string,
  fail: (step: string, reason: string) => ModelError,
  signal?: AbortSignal,
): Promise<HfDir> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw fail("reading the repository", (err as Error).message);
  }
  let config: { architectures?: unknown };
  try {
    config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as typeof config;
  } catch {
    throw fail("reading config.json", "the repository has no readable config.json");
  }
  const architecture = Array.isArray(config.architectures) ? config.architectures[0] : undefined;
  if (typeof architecture !== "string")
    throw fail("reading config.json", 'config.json names no architecture ("architectures")');
  if (!names.some((n) => n === "tokenizer.json" || n === "tokenizer.model"))
    throw fail(
      "checking the tokenizer",
      "the repository has no tokenizer (tokenizer.json or tokenizer.model); download it with the weights",
    );
  const weights = names.filter((n) => n.endsWith(".safetensors")).sort();
  if (weights.length === 0) throw fail("checking the weights", "the repository has no .safetensors files");
  let tensors = 0;
  let parameters = 0;
  for (const file of weights) {
    try {
      const read = await safetensorsTensors(join(dir, file));
      tensors += read.tensors;
      parameters += read.parameters;
    } catch (err) {
      throw fail(
        "checking the weights",
        `${file} is not a whole safetensors file: ${(err as Error).message}`,
      );
    }
  }
  const files = await hashDir(dir, signal);
  return { sha256: hfDirSha256(files), files, architecture, tensors, parameters };
}

/**
 * llama.cpp's convert_hf_to_gguf.py with its conversion/ package and gguf-py, checked out of the
 * engine's bundle into `toolsDir` once per commit; a half-made checkout is never where a later call looks.
 */
export async function ensureConvertScript(
  source: LlamaSource,
  opts: { toolsDir: string; signal?: AbortSignal | undefined; pidfiles?: PidfileRegistry | undefined },
): Promise<string> {
  const dir = join(opts.toolsDir, `convert-hf-to-gguf-${source.commit.slice(0, 12)}`);
  const script = join(dir, "convert_hf_to_gguf.py");
  await makeOnce(dir, script, (making) =>
    checkoutFromBundle(source, making, ["convert_hf_to_gguf.py", "conversion", "gguf-py"], async (args) => {
      const out = await runTool({
        name: "git",
        command: "git",
        args,
        signal: opts.signal,
        pidfiles: opts.pidfiles,
      });
      if (out.ok) return;
      if (out.stopped) throw new ModelError("conversion_failed", "reading llama.cpp's converter was stopped");
      throw new ModelError(
        "converter_unavailable",
        `this machine cannot read llama.cpp's converter out of node-llama-cpp's bundle (git is needed): ${out.said}`,
      );
    }),
  );
  return script;
}
