import { createHash } from "node:crypto";
import { readdir, readFile, truncate } from "node:fs/promises";
import { dirname, join } from "node:path";
import { TEST_MODEL, tempDir, testModelAs, testModelPath } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EngineProcess, startEngine } from "../../engines/builtin/testing/engine-process.ts";
import { isModelError } from "../model-error.ts";
import { ModelStore, type PullProgress } from "../store.ts";
import { canMountTmpfs, withSmallStore } from "../testing/small-disk.ts";
import { quantizeModel } from "./quantize.ts";

/*
 * Quantisation with llama.cpp's real quantize tool (built from node-llama-cpp's bundled source against
 * its prebuilt libraries) on the real SmolLM2-135M, the result served by the real builtin engine.
 */

let store: ModelStore;
let engine: EngineProcess | undefined;

beforeAll(async () => {
  const model = testModelPath();
  store = new ModelStore({ dir: tempDir("b9-convert-"), allowedDirs: [dirname(model)], localImport: "link" });
  await store.pull("smol", model);
}, 120_000);

afterAll(async () => {
  await engine?.stop();
});

/** What stays in the store's blobs folder besides finished blobs: must be nothing. */
async function leftovers(): Promise<string[]> {
  return (await readdir(join(store.dir, "blobs"))).filter((n) => !/^sha256-[0-9a-f]{64}$/.test(n));
}

async function fails(run: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isModelError(err)) throw new Error(`expected a model error, got ${String(err)}`);
  return { code: err.code, message: err.message };
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

describe("quantizing a stored GGUF", () => {
  it("makes Q8_0 from SmolLM2's Q4_1, recorded with its origin, and it still says Paris", async () => {
    const seen: PullProgress[] = [];
    const record = await quantizeModel(store, {
      from: "smol",
      name: "smol-q8",
      type: "q8_0",
      threads: 1,
      onProgress: (p) => seen.push(p),
    });
    expect(record).toMatchObject({
      name: "smol-q8",
      format: "gguf",
      quantization: "Q8_0",
      architecture: "llama",
    });
    expect(record.converted_from).toMatchObject({
      name: "smol",
      sha256: TEST_MODEL.sha256,
      quantization: "Q4_1",
      target: "Q8_0",
      converter: { tool: "llama-quantize", args: ["--allow-requantize", "Q8_0"] },
    });
    expect(record.converted_from?.converter.version).toMatch(/^llama\.cpp v\S+ \([0-9a-f]{12}\)$/);
    // Content-addressed: the blob's bytes hash to the record's sha256.
    const bytes = await readFile(store.blobPath(record.sha256));
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(record.sha256);
    expect(record.size).toBe(bytes.length);
    expect(record.size).toBeGreaterThan(TEST_MODEL.bytes); // 8.5 bits a weight against 5
    const last = seen.filter((p) => p.status === "quantizing").at(-1);
    expect(last?.completed).toBe(last?.total);
    expect(await store.get("smol-q8")).toEqual(record);
    expect(await leftovers()).toEqual([]);

    // The type people deploy with: requantised from Q4_1 it loses most, and must still answer.
    const k = await quantizeModel(store, { from: "smol", name: "smol-q4km", type: "Q4_K_M", threads: 1 });
    expect(k.quantization).toBe("Q4_K_M");

    engine = await startEngine();
    for (const [name, id] of [
      ["smol", "original"],
      ["smol-q8", "quantized"],
      ["smol-q4km", "q4km"],
    ] as const) {
      const spec = await store.resolve(name, { contextSize: 512 });
      expect(
        (await engine.api("POST", "/admin/models", { name: id, path: spec.path, context_size: 512 })).status,
      ).toBe(201);
    }
    const original = await answer("original");
    expect(original).toMatch(/Paris/);
    expect(await answer("quantized")).toMatch(/Paris/);
    expect(await answer("q4km")).toMatch(/Paris/);
  }, 240_000);

  it("never converts the same source to the same type twice", async () => {
    const first = await store.get("smol-q8");
    const seen: string[] = [];
    const again = await quantizeModel(store, { from: "smol", name: "smol-q8", type: "Q8_0", threads: 1 });
    expect(again).toEqual(first);
    const other = await quantizeModel(store, {
      from: "smol",
      name: "smol-eight",
      type: "Q8_0",
      threads: 1,
      onProgress: (p) => seen.push(p.status),
    });
    expect(seen).not.toContain("quantizing");
    expect(other.sha256).toBe(first?.sha256);
    expect(other.converted_from).toEqual(first?.format === "gguf" ? first.converted_from : undefined);
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("refuses a quantization type that does not exist, naming the model and what to use", async () => {
    const err = await fails(quantizeModel(store, { from: "smol", name: "smol-bad", type: "Q9_9" }));
    expect(err.code).toBe("invalid_quantization");
    expect(err.message).toMatch(
      /cannot quantize smol to "Q9_9": llama\.cpp has no such quantization type; use one of Q4_K_M/,
    );
    const imatrix = await fails(quantizeModel(store, { from: "smol", name: "smol-bad", type: "IQ2_XS" }));
    expect(imatrix).toMatchObject({ code: "invalid_quantization" });
    expect(imatrix.message).toMatch(/needs an importance matrix/);
    expect(await store.get("smol-bad")).toBeUndefined();
  });

  it("refuses a model that is not there", async () => {
    const err = await fails(quantizeModel(store, { from: "nothing-here", name: "x", type: "Q8_0" }));
    expect(err).toMatchObject({ code: "model_not_found" });
    expect(err.message).toMatch(/no model nothing-here on this machine/);
  });

  it("refuses weights cut short since they were recorded, before the tool reads them", async () => {
    // A store of its own: blobs are shared between names, and cutting this one must leave "smol" whole.
    const own = new ModelStore({ dir: tempDir("b9-convert-cut-"), allowedDirs: [dirname(testModelPath())] });
    await own.pull("smol", testModelPath());
    await truncate(own.blobPath(TEST_MODEL.sha256), 5_000_000);
    const err = await fails(quantizeModel(own, { from: "smol", name: "smol-q8", type: "Q8_0", threads: 1 }));
    expect(err.code).toBe("model_changed");
    expect(err.message).toMatch(
      /the weights of smol changed on disk since they were recorded; pull it again/,
    );
    expect(await own.get("smol-q8")).toBeUndefined();
    expect((await readdir(join(own.dir, "blobs"))).filter((n) => n.startsWith("."))).toEqual([]);
  }, 120_000);

  it("fails on an architecture llama.cpp does not know with the tool's reason, and keeps nothing", async () => {
    // SmolLM2 whose general.architecture says "llamb": a well-formed GGUF of a model llama.cpp cannot load.
    const dir = tempDir("b9-convert-arch-");
    await testModelAs("llamb", dir);
    const own = new ModelStore({ dir: join(dir, "store"), allowedDirs: [dir], localImport: "in-place" });
    await own.pull("llamb", join(dir, "llamb.gguf"));
    const err = await fails(
      quantizeModel(own, { from: "llamb", name: "llamb-q8", type: "Q8_0", threads: 1 }),
    );
    expect(err.code).toBe("conversion_failed");
    expect(err.message).toMatch(
      /^quantizing llamb to Q8_0 as llamb-q8 failed: .*unknown model architecture: 'llamb'/,
    );
    expect(await own.get("llamb-q8")).toBeUndefined();
    expect((await readdir(join(own.dir, "blobs"))).filter((n) => n.startsWith("."))).toEqual([]);
  }, 120_000);

  it("runs one conversion for two concurrent requests of the same source and type, both seeing its progress", async () => {
    // The last progress line each caller saw: one run sends one line to both.
    const finals = new Map<string, object>();
    const ask = (name: string) =>
      quantizeModel(store, {
        from: "smol",
        name,
        type: "Q5_0",
        threads: 1,
        onProgress: (p) => {
          if (p.status === "quantizing" && p.completed === p.total) finals.set(name, p);
        },
      });
    const [a, b] = await Promise.all([ask("smol-q5-a"), ask("smol-q5-b")]);
    expect([...finals.keys()].sort()).toEqual(["smol-q5-a", "smol-q5-b"]);
    expect(new Set(finals.values()).size).toBe(1);
    expect(a.sha256).toBe(b.sha256);
    expect(a.quantization).toBe("Q5_0");
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("stops when cancelled, and keeps nothing", async () => {
    const abort = new AbortController();
    const err = await fails(
      quantizeModel(store, {
        from: "smol",
        name: "smol-q6",
        type: "Q6_K",
        threads: 1,
        signal: abort.signal,
        onProgress: (p) => {
          if (p.status === "quantizing") abort.abort();
        },
      }),
    );
    expect(err).toMatchObject({ code: "conversion_failed" });
    expect(err.message).toMatch(/stopped/);
    expect(await store.get("smol-q6")).toBeUndefined();
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it.skipIf(!canMountTmpfs)("refuses when the disk cannot hold the output, before running the tool", () =>
    withSmallStore(32, async (small) => {
      const seen: string[] = [];
      const err = await fails(
        quantizeModel(small, {
          from: "smol",
          name: "smol-f16",
          type: "F16",
          onProgress: (p) => seen.push(p.status),
        }),
      );
      expect(err.code).toBe("insufficient_disk");
      expect(err.message).toMatch(
        /^quantizing smol to F16 needs about \d+ MiB in .*, and \d+ MiB are free; free some space/,
      );
      expect(seen).toEqual([]);
      expect(await small.get("smol-f16")).toBeUndefined();
      expect(await readdir(join(small.dir, "blobs"))).toEqual([]);
    }),
  );
});
