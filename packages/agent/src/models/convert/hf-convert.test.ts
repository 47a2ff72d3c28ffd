import { execFile } from "node:child_process";
import { copyFile, mkdir, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { TEST_MODEL, tempDir, testConverterPython, testModelPath } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EngineProcess, startEngine } from "../../engines/builtin/testing/engine-process.ts";
import { isModelError } from "../model-error.ts";
import { ModelStore, type PullProgress } from "../store.ts";
import { canMountTmpfs, withSmallStore } from "../testing/small-disk.ts";
import { ggufToSafetensors, type HfModelDir, safetensorsDir } from "./gguf-to-hf.ts";
import { safetensorsToGguf } from "./hf-to-gguf.ts";

/*
 * GGUF → safetensors (transformers' GGUF loader) and back (llama.cpp's convert_hf_to_gguf.py), both under
 * Debian's torch 1.13 in the converter's Python (scripts/convert-env), on the real SmolLM2-135M; the
 * round trip is served by the real builtin engine.
 */

let python: string;
let store: ModelStore;
let hf: HfModelDir;
let engine: EngineProcess | undefined;

beforeAll(async () => {
  python = testConverterPython();
  const model = testModelPath();
  store = new ModelStore({ dir: tempDir("b9-hf-"), allowedDirs: [dirname(model)], localImport: "link" });
  await store.pull("smol", model);
}, 120_000);

afterAll(async () => {
  await engine?.stop();
});

async function fails(run: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isModelError(err)) throw new Error(`expected a model error, got ${String(err)}`);
  return { code: err.code, message: err.message };
}

/** What stays in the store's blobs and safetensors folders besides finished ones: must be nothing. */
async function leftovers(s: ModelStore = store): Promise<string[]> {
  const names = [
    ...(await readdir(join(s.dir, "blobs")).catch(() => [])),
    ...(await readdir(safetensorsDir(s)).catch(() => [])),
  ];
  return names.filter((n) => !/^sha256-[0-9a-f]{64}$/.test(n));
}

async function answer(model: string): Promise<string> {
  const res = await engine!.api<{ choices: { message: { content: string } }[] }>(
    "POST",
    "/v1/chat/completions",
    {
      model,
      messages: [{ role: "user", content: "What is the capital of France?" }],
      max_tokens: 24,
      temperature: 0,
    },
  );
  expect(res.status).toBe(200);
  return res.body.choices[0]!.message.content;
}

/** A copy of the converted repository to spoil, in a directory of its own. */
async function copyOfRepo(name: string): Promise<string> {
  const dir = join(tempDir("b9-hf-bad-"), name);
  await mkdir(dir);
  for (const f of hf.files) await copyFile(join(hf.dir, f.name), join(dir, f.name));
  return dir;
}

describe("safetensors ↔ GGUF", () => {
  it("round-trips SmolLM2 through safetensors to GGUF F16 and Q8_0, and both still say Paris", async () => {
    const steps: string[] = [];
    hf = await ggufToSafetensors(store, { from: "smol", python, onProgress: (p) => steps.push(p.status) });
    expect(steps).toEqual(expect.arrayContaining(["dequantizing", "writing weights", "writing tokenizer"]));
    expect(hf.dir).toBe(join(safetensorsDir(store), `sha256-${hf.sha256}`));
    const names = hf.files.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(["config.json", "model.safetensors", "tokenizer.json"]));
    // transformers keeps the GGUF itself as tokenizer.model: not a sentencepiece model, dropped.
    expect(names).not.toContain("tokenizer.model");
    expect(hf.converted_from).toMatchObject({
      name: "smol",
      sha256: TEST_MODEL.sha256,
      format: "gguf",
      quantization: "Q4_1",
      target: "float16",
      converter: { tool: "transformers", args: ["--dtype", "float16"] },
    });
    expect(hf.converted_from.converter.version).toMatch(/torch 1\.13.*transformers 4\.46\.3/);
    const config = JSON.parse(await readFile(join(hf.dir, "config.json"), "utf8")) as {
      architectures: string[];
    };
    expect(config.architectures).toEqual(["LlamaForCausalLM"]);

    const seen: PullProgress[] = [];
    const f16 = await safetensorsToGguf(store, {
      dir: hf.dir,
      name: "smol-f16",
      source: "smol-hf",
      python,
      onProgress: (p) => seen.push(p),
    });
    expect(f16).toMatchObject({
      name: "smol-f16",
      format: "gguf",
      quantization: "F16",
      architecture: "llama",
    });
    expect(f16.converted_from).toMatchObject({
      name: "smol-hf",
      sha256: hf.sha256,
      format: "safetensors",
      quantization: null,
      target: "F16",
      converter: { tool: "convert_hf_to_gguf.py", args: ["--outtype", "f16"] },
    });
    expect(f16.converted_from?.converter.version).toMatch(
      /^convert_hf_to_gguf\.py llama\.cpp v\S+ \([0-9a-f]{12}\); torch 1\.13/,
    );
    const converting = seen.filter((p) => p.status === "converting");
    expect(converting.length).toBeGreaterThan(100);
    expect(converting.at(-1)?.total).toBeGreaterThan(100);
    const q8 = await safetensorsToGguf(store, { dir: hf.dir, name: "smol-rt-q8", type: "q8_0", python });
    expect(q8.quantization).toBe("Q8_0");
    expect(q8.size).toBeLessThan(f16.size);
    expect(await leftovers()).toEqual([]);

    engine = await startEngine();
    for (const [name, id] of [
      ["smol", "original"],
      ["smol-f16", "f16"],
      ["smol-rt-q8", "q8"],
    ] as const) {
      const spec = await store.resolve(name, { contextSize: 512 });
      expect(
        (await engine.api("POST", "/admin/models", { name: id, path: spec.path, context_size: 512 })).status,
      ).toBe(201);
    }
    expect(await answer("original")).toMatch(/Paris/);
    expect(await answer("f16")).toMatch(/Paris/);
    expect(await answer("q8")).toMatch(/Paris/);
  }, 600_000);

  it("never converts the same source to the same target twice", async () => {
    const steps: string[] = [];
    const again = await ggufToSafetensors(store, {
      from: "smol",
      python,
      onProgress: (p) => steps.push(p.status),
    });
    expect(again).toEqual(hf);
    expect(steps).toEqual([]);
    const first = await store.get("smol-f16");
    expect(
      await safetensorsToGguf(store, { dir: hf.dir, name: "smol-f16", source: "smol-hf", python }),
    ).toEqual(first);
    const seen: string[] = [];
    const other = await safetensorsToGguf(store, {
      dir: hf.dir,
      name: "smol-f16-b",
      source: "smol-hf",
      python,
      onProgress: (p) => seen.push(p.status),
    });
    expect(seen).not.toContain("converting");
    expect(other.sha256).toBe(first?.sha256);
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("refuses a repository without a tokenizer, naming the model, the step and the reason", async () => {
    const dir = await copyOfRepo("no-tokenizer");
    await rm(join(dir, "tokenizer.json"));
    const err = await fails(safetensorsToGguf(store, { dir, name: "no-tok", python }));
    expect(err.code).toBe("conversion_failed");
    expect(err.message).toMatch(
      /^converting no-tokenizer from safetensors to GGUF F16 as no-tok failed at checking the tokenizer: the repository has no tokenizer/,
    );
    expect(await store.get("no-tok")).toBeUndefined();
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("refuses a truncated safetensors file before the tool reads it", async () => {
    const dir = await copyOfRepo("cut-short");
    await truncate(join(dir, "model.safetensors"), 5_000_000);
    const err = await fails(safetensorsToGguf(store, { dir, name: "cut", python }));
    expect(err.code).toBe("conversion_failed");
    expect(err.message).toMatch(
      /^converting cut-short from safetensors to GGUF F16 as cut failed at checking the weights: model\.safetensors is not a whole safetensors file: it is cut short: 5000000 bytes of the \d+/,
    );
    expect(await store.get("cut")).toBeUndefined();
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("fails on an architecture llama.cpp's converter does not know with the tool's reason, keeping nothing", async () => {
    const dir = await copyOfRepo("llamb");
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({ ...config, architectures: ["LlambForCausalLM"] }),
    );
    const err = await fails(safetensorsToGguf(store, { dir, name: "llamb", python }));
    expect(err.code).toBe("conversion_failed");
    expect(err.message).toMatch(
      /^converting llamb from safetensors to GGUF F16 as llamb failed at converting: .*Model LlambForCausalLM is not supported/,
    );
    expect(await store.get("llamb")).toBeUndefined();
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("fails on a GGUF architecture transformers cannot read with its reason, keeping nothing", async () => {
    // SmolLM2 whose general.architecture says "llamb": a well-formed GGUF no converter knows.
    const bytes = await readFile(testModelPath());
    const at = bytes.indexOf("general.architecture") + "general.architecture".length + 12;
    expect(bytes.subarray(at, at + 5).toString()).toBe("llama");
    bytes.write("llamb", at);
    const dir = tempDir("b9-hf-arch-");
    await writeFile(join(dir, "llamb.gguf"), bytes);
    const own = new ModelStore({ dir: join(dir, "store"), allowedDirs: [dir], localImport: "in-place" });
    await own.pull("llamb", join(dir, "llamb.gguf"));
    const err = await fails(ggufToSafetensors(own, { from: "llamb", python }));
    expect(err.code).toBe("conversion_failed");
    expect(err.message).toMatch(
      /^converting llamb from GGUF to safetensors \(float16\) failed at dequantizing: ValueError: Architecture llamb not supported/,
    );
    expect(await leftovers(own)).toEqual([]);
    expect(await readdir(safetensorsDir(own))).toEqual([]);
  }, 120_000);

  it("stops when cancelled and keeps nothing", async () => {
    const stop = new AbortController();
    const err = await fails(
      safetensorsToGguf(store, {
        dir: hf.dir,
        name: "smol-bf16",
        type: "BF16",
        python,
        signal: stop.signal,
        onProgress: (p) => {
          if (p.status === "converting") stop.abort();
        },
      }),
    );
    expect(err.code).toBe("conversion_failed");
    expect(err.message).toMatch(/as smol-bf16 failed at converting: the conversion was stopped/);
    expect(await store.get("smol-bf16")).toBeUndefined();
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it.skipIf(!canMountTmpfs)(
    "refuses a GGUF → safetensors conversion the disk cannot hold, before running the tool",
    () =>
      withSmallStore(48, async (small) => {
        const seen: string[] = [];
        const err = await fails(
          ggufToSafetensors(small, { from: "smol", python, onProgress: (p) => seen.push(p.status) }),
        );
        expect(err.code).toBe("insufficient_disk");
        expect(err.message).toMatch(
          /^converting smol from GGUF to safetensors \(float16\) needs about \d+ MiB in .*, and \d+ MiB are free; free some space/,
        );
        expect(seen).toEqual([]);
        expect(await leftovers(small)).toEqual([]);
      }),
  );

  it("rebuilds llama.cpp's llama-bpe (Llama 3) and qwen2 pre-tokenizers: the safetensors tokenizer splits text as llama.cpp does", async () => {
    // SmolLM2's vocabulary under each pre-tokenizer's name (gguf-py's own gguf_new_metadata); texts
    // where llama-bpe splits otherwise than SmolLM2's own rule, and transformers' loader got 2 of 11 wrong.
    const texts = [
      "What is the capital of France?",
      "I'll say it's 12345 dollars, isn't it?",
      "Hello   world\n\n  indented\tline\r\nend",
      "Ünïcödé café — naïve 東京 2024年",
      "x=a+b*(c-1); print(f'{x:>10}')",
      "WE'RE SHOUTING! They've Done It'S IT'LL",
      "(hello) _world __init__ $var #tag @me",
      "a\n\n\nb \n c\t\t\n  \n d",
    ];
    const dir = tempDir("b9-pretok-");
    const run = promisify(execFile);
    const llamaCpp = pathToFileURL(createRequire(import.meta.url).resolve("node-llama-cpp")).href;
    const tokenizeScript = join(dir, "tokenize.mjs");
    await writeFile(
      tokenizeScript,
      `import { getLlama } from ${JSON.stringify(llamaCpp)};
const llama = await getLlama({ gpu: false });
const model = await llama.loadModel({ modelPath: process.argv[2] });
console.log(JSON.stringify(JSON.parse(process.argv[3]).map((t) => Array.from(model.tokenize(t, false)))));
await model.dispose();
`,
    );
    const hfScript =
      "import json, sys\nfrom tokenizers import Tokenizer\nt = Tokenizer.from_file(sys.argv[1])\n" +
      "print(json.dumps([t.encode(x, add_special_tokens=False).ids for x in json.loads(sys.argv[2])]))";
    for (const pre of ["llama-bpe", "qwen2"]) {
      const gguf = join(dir, `smol-${pre}.gguf`);
      await run(python, [
        "-m",
        "gguf.scripts.gguf_new_metadata",
        "--pre-tokenizer",
        pre,
        testModelPath(),
        gguf,
        "--force",
      ]);
      const local = new ModelStore({
        dir: tempDir("b9-pretok-store-"),
        allowedDirs: [dir],
        localImport: "link",
      });
      await local.pull(`smol-${pre}`, gguf);
      const made = await ggufToSafetensors(local, { from: `smol-${pre}`, python });
      const byLlamaCpp = JSON.parse(
        (await run(process.execPath, [tokenizeScript, gguf, JSON.stringify(texts)])).stdout,
      ) as number[][];
      const byTokenizer = JSON.parse(
        (await run(python, ["-c", hfScript, join(made.dir, "tokenizer.json"), JSON.stringify(texts)])).stdout,
      ) as number[][];
      expect(byTokenizer, pre).toEqual(byLlamaCpp);
      const written = JSON.parse(await readFile(join(made.dir, "tokenizer.json"), "utf8")) as {
        pre_tokenizer: { pretokenizers: { type: string }[] };
      };
      expect(written.pre_tokenizer.pretokenizers.map((p) => p.type)).toEqual(["Split", "ByteLevel"]);
    }
  }, 240_000);

  it.skipIf(!canMountTmpfs)(
    "refuses a safetensors → GGUF conversion the disk cannot hold, before running the tool",
    () =>
      withSmallStore(48, async (small) => {
        const seen: string[] = [];
        const err = await fails(
          safetensorsToGguf(small, {
            dir: hf.dir,
            source: "hf:test/smol",
            name: "smol-q8",
            type: "Q8_0",
            python,
            onProgress: (p) => seen.push(p.status),
          }),
        );
        expect(err.code).toBe("insufficient_disk");
        // SmolLM2-135M: ~135 M weights at 8.5 bits, about 143 MiB, on a 48 MiB disk.
        expect(err.message).toMatch(
          /^converting hf:test\/smol from safetensors to GGUF Q8_0 needs about 1[34]\d MiB in .*, and \d+ MiB are free; free some space/,
        );
        expect(seen).toEqual([]);
        expect(await small.get("smol-q8")).toBeUndefined();
        expect(await leftovers(small)).toEqual([]);
      }),
  );
});
