import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type FileServer, servePythonFolder, TEST_MODEL, tempDir, testModelPath } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelCardFacts, spdxLicense } from "./provenance.ts";
import { ModelStore } from "./store.ts";

/*
 * Provenance: the licence and base model of a pulled model, from its GGUF metadata and, for hf:
 * sources, the repository's model card on the same hub (python's http.server serving a hub-like
 * tree, ORG/REPO/resolve/REV/FILE). What neither says stays null: never guessed.
 */

/** A valid GGUF with no tensors and the given string (and u32) metadata. */
function gguf(meta: Record<string, string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from("GGUF")];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    parts.push(b);
  };
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    parts.push(b);
  };
  const str = (s: string) => {
    u64(Buffer.byteLength(s));
    parts.push(Buffer.from(s));
  };
  u32(3);
  u64(0);
  u64(Object.keys(meta).length);
  for (const [k, v] of Object.entries(meta)) {
    str(k);
    if (typeof v === "number") {
      u32(4);
      u32(v);
    } else {
      u32(8);
      str(v);
    }
  }
  return Buffer.concat(parts);
}

let hub: FileServer;
let root: string;
const stores: string[] = [];

/** Put `file` (bytes, or a link to a file) at ORG/REPO/resolve/main/NAME in the hub's tree. */
function publish(repo: string, name: string, file: Buffer | string): void {
  const dir = join(root, repo, "resolve", "main");
  mkdirSync(dir, { recursive: true });
  if (typeof file === "string") symlinkSync(file, join(dir, name));
  else writeFileSync(join(dir, name), file);
}

function newStore(): ModelStore {
  const dir = tempDir("b9-provenance-");
  stores.push(dir);
  return new ModelStore({ dir, huggingFaceBaseUrl: `http://127.0.0.1:${hub.port}` });
}

beforeAll(async () => {
  root = tempDir("b9-hub-");
  publish("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "model.gguf", testModelPath());
  publish(
    "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
    "README.md",
    Buffer.from("---\nlicense: mit\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n# SmolLM2\n"),
  );
  publish("acme/card-only", "model.gguf", gguf({ "general.architecture": "llama" }));
  publish(
    "acme/card-only",
    "README.md",
    Buffer.from(
      "---\nlicense: other\nlicense_name: llama3.2\nbase_model:\n  - meta-llama/Llama-3.2-1B\n---\n",
    ),
  );
  publish("acme/no-card", "model.gguf", gguf({ "general.architecture": "llama" }));
  publish(
    "acme/based",
    "model.gguf",
    gguf({
      "general.architecture": "qwen2",
      "general.license": "APACHE-2.0",
      "general.base_model.count": 1,
      "general.base_model.0.organization": "Qwen",
      "general.base_model.0.name": "Qwen2.5 0.5B",
    }),
  );
  hub = await servePythonFolder(root);
}, 30_000);

afterAll(async () => {
  await hub?.stop();
  for (const d of [root, ...stores]) rmSync(d, { recursive: true, force: true });
});

describe("a pulled model's provenance", () => {
  it("the test model: sha256 of its bytes, its licence from its GGUF (the file's word wins over the card's), its base model from the card", async () => {
    const { record } = await newStore().pull(
      "smollm2",
      "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/model.gguf",
    );
    expect(record).toMatchObject({
      sha256: TEST_MODEL.sha256,
      license: "Apache-2.0",
      license_source: "gguf",
      base_model: "HuggingFaceTB/SmolLM2-135M-Instruct",
      architecture: "llama",
      quantization: "Q4_1",
      context_length: 8192,
      url: `http://127.0.0.1:${hub.port}/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/model.gguf`,
    });
    expect(record.parameter_count).toBeGreaterThan(100e6);
  });

  it("a GGUF that names no licence takes the model card's (license_name for 'other') and its base models", async () => {
    const { record } = await newStore().pull("card", "hf:acme/card-only/model.gguf");
    expect(record).toMatchObject({
      license: "llama3.2",
      license_source: "model_card",
      base_model: "meta-llama/Llama-3.2-1B",
    });
  });

  it("no licence in the file and no model card: null (a report says unknown), not a guess", async () => {
    const { record } = await newStore().pull("bare", "hf:acme/no-card/model.gguf");
    expect(record).toMatchObject({ license: null, license_source: null, base_model: null });
  });

  it("GGUF general.base_model.* and general.license in its SPDX spelling", async () => {
    const { record } = await newStore().pull("based", "hf:acme/based/model.gguf");
    expect(record).toMatchObject({
      license: "Apache-2.0",
      license_source: "gguf",
      base_model: "Qwen/Qwen2.5 0.5B",
      architecture: "qwen2",
    });
  });
});

describe("licence ids and model cards", () => {
  it("known ids in their SPDX spelling; others as written; blank is none", () => {
    expect(spdxLicense("apache-2.0")).toBe("Apache-2.0");
    expect(spdxLicense(" mit ")).toBe("MIT");
    expect(spdxLicense("llama3.1")).toBe("llama3.1");
    expect(spdxLicense("  ")).toBeNull();
    expect(spdxLicense(42)).toBeNull();
  });

  it("a card without front matter, or with broken YAML, states nothing", () => {
    expect(modelCardFacts("# Just a title\nlicense: mit\n")).toEqual({ license: null, base_model: null });
    expect(modelCardFacts("---\nlicense: [mit\n---\n")).toEqual({ license: null, base_model: null });
  });
});
