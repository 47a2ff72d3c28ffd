import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PullProgress } from "@beta9/protocol";
import { type FileServer, servePythonFolder, tempDir, testConverterPython } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { macStudio, oneH100 } from "../engines/testing/machines.ts";
import { ModelStore } from "../models/store.ts";
import { capacityOf, StoreCatalog } from "./model-catalog.ts";

/*
 * A safetensors repository too big for the machine at the type asked is refused from the hub's listing,
 * before any weight is fetched or converted, so the gateway tries its next machine at once. The hub is
 * python's http.server serving Hugging Face's layout; the listing names two 8 GB bfloat16 shards
 * (8 B parameters) that the hub does not have: only a pull that passed the check asks for them.
 */

const GiB = 1024 ** 3;
let hub: FileServer;
const envBefore = process.env.BETA9_CONVERT_PYTHON;

beforeAll(async () => {
  process.env.BETA9_CONVERT_PYTHON = testConverterPython();
  const root = tempDir("b9-hub-big-");
  const files = join(root, "acme", "big", "resolve", "main");
  await mkdir(files, { recursive: true });
  const config = JSON.stringify({ architectures: ["LlamaForCausalLM"], torch_dtype: "bfloat16" });
  await writeFile(join(files, "config.json"), config);
  await writeFile(join(files, "tokenizer.json"), "{}");
  const listing = join(root, "api", "models", "acme", "big", "tree");
  await mkdir(listing, { recursive: true });
  const shard = (n: number) => ({
    type: "file",
    path: `model-0000${n}-of-00002.safetensors`,
    size: 8e9,
    oid: "0".repeat(40),
    lfs: { oid: String(n).repeat(64), size: 8e9, pointerSize: 134 },
  });
  await writeFile(
    join(listing, "main"),
    JSON.stringify([
      { type: "file", path: "config.json", size: config.length, oid: "1".repeat(40) },
      { type: "file", path: "tokenizer.json", size: 2, oid: "2".repeat(40) },
      shard(1),
      shard(2),
    ]),
  );
  hub = await servePythonFolder(root);
}, 60_000);

afterAll(async () => {
  await hub?.stop();
  if (envBefore === undefined) delete process.env.BETA9_CONVERT_PYTHON;
  else process.env.BETA9_CONVERT_PYTHON = envBefore;
});

function catalogWith(capacityBytes: number): { catalog: StoreCatalog; store: ModelStore } {
  const store = new ModelStore({
    dir: tempDir("b9-capacity-"),
    huggingFaceBaseUrl: `http://127.0.0.1:${hub.port}`,
  });
  return { catalog: new StoreCatalog(store, { capacityBytes }), store };
}

async function pull(catalog: StoreCatalog, quantize?: string) {
  const seen: PullProgress[] = [];
  const err = await catalog
    .pull("big", "hf:acme/big", {
      signal: new AbortController().signal,
      onProgress: (p) => seen.push(p),
      quantize,
    })
    .then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
  return { err, seen };
}

describe("a repository too big for the machine", () => {
  it("is refused from the listing at the type asked, before any weight is fetched", async () => {
    const { catalog, store } = catalogWith(8 * GiB);
    const { err, seen } = await pull(catalog);
    expect(err?.code).toBe("insufficient_memory");
    expect(err?.message).toBe(
      "hf:acme/big as GGUF F16 needs about 14.9 GiB for its weights alone (8.0 B parameters), more than the 8.0 GiB of memory this machine has in all; deploy it with a smaller --quantize type or on a larger machine",
    );
    expect(seen.some((p) => p.status.startsWith("pulling big"))).toBe(false);
    expect(await readdir(store.hfReposDir).catch(() => [])).toEqual([]);
  });

  it("at a type that fits, goes on to fetch the weights (which this hub lacks: the pull then fails there)", async () => {
    const { catalog } = catalogWith(8 * GiB);
    const { err } = await pull(catalog, "Q4_K_M");
    expect(err?.code).toBe("conversion_failed");
    expect(err?.message).toMatch(/failed at downloading model-00001-of-00002\.safetensors: .*404/);
  });

  it("counts a machine's RAM and its GPUs' own memory, unified memory once", () => {
    expect(capacityOf(oneH100)).toBe(oneH100.memory_total_bytes + oneH100.gpus[0]!.memory_total_bytes!);
    expect(capacityOf(macStudio)).toBe(macStudio.memory_total_bytes);
  });
});
