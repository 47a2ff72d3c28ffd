import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { TEST_MODEL, tempDir, testModelPath } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { ModelError } from "./model-error.ts";
import { ModelStore, type PullProgress } from "./store.ts";
import { type FileServer, startFileServer } from "./testing/file-server.ts";

const MiB = 1024 * 1024;
let server: FileServer | undefined;
let dirs: string[] = [];

function workDir(): string {
  const dir = tempDir("b9-store-");
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await server?.close();
  server = undefined;
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  dirs = [];
});

function newStore(extra: ConstructorParameters<typeof ModelStore>[0] = {}): ModelStore {
  return new ModelStore({
    dir: join(workDir(), "models"),
    download: { retryDelayMs: 5, progressIntervalMs: 0 },
    ...extra,
  });
}

/** A tiny but valid GGUF (no tensors) whose bytes differ by `tag`. */
async function tinyGguf(dir: string, tag: string): Promise<string> {
  const parts: Buffer[] = [];
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
  parts.push(Buffer.from("GGUF"));
  u32(3);
  u64(0);
  u64(2);
  str("general.architecture");
  u32(8);
  str("llama");
  str("general.name");
  u32(8);
  str(tag);
  const path = join(dir, `${tag}.gguf`);
  await mkdir(dir, { recursive: true });
  await writeFile(path, Buffer.concat(parts));
  return path;
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return err instanceof ModelError ? err.code : `not a ModelError: ${String(err)}`;
  }
  return undefined;
}

async function listing(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

describe("ModelStore", () => {
  it("pulls over http into a content-addressed blob and records provenance", async () => {
    server = await startFileServer({ file: testModelPath() });
    const store = newStore();
    const progress: PullProgress[] = [];
    const result = await store.pull("SmolLM2-135M", server.url(), {
      expectedSha256: TEST_MODEL.sha256.toUpperCase(),
      onProgress: (p) => progress.push(p),
    });
    expect(result.status).toBe("stored");
    const record = result.record;
    expect(record).toMatchObject({
      name: "smollm2-135m",
      format: "gguf",
      sha256: TEST_MODEL.sha256,
      size: TEST_MODEL.bytes,
      source: server.url(),
      url: server.url(),
      architecture: "llama",
      quantization: "Q4_1",
      context_length: 8192,
      block_count: 30,
    });
    expect(record.license?.toLowerCase()).toBe("apache-2.0");
    expect(record.parameter_count).toBeGreaterThan(130e6);
    expect(Date.parse(record.created_at)).not.toBeNaN();

    expect((await stat(store.blobPath(TEST_MODEL.sha256))).size).toBe(TEST_MODEL.bytes);
    const onDisk = JSON.parse(await readFile(join(store.dir, "models", "smollm2-135m.json"), "utf8"));
    expect(onDisk).toEqual(record);
    expect(await store.get("smollm2-135m")).toEqual(record);
    expect(await store.list()).toEqual([record]);
    expect(await listing(join(store.dir, "downloads"))).toEqual([]);

    expect(progress[0]).toEqual({ status: "pulling manifest" });
    expect(progress.map((p) => p.status).slice(-3)).toEqual([
      "verifying sha256 digest",
      "writing manifest",
      "success",
    ]);
    const bytes = progress.filter((p) => p.completed !== undefined);
    expect(bytes.at(-1)).toMatchObject({ completed: TEST_MODEL.bytes, total: TEST_MODEL.bytes });
    expect(bytes.at(-1)!.digest).toBe(`sha256:${TEST_MODEL.sha256}`);
  });

  it("pulls hf: sources from the configured Hugging Face base URL", async () => {
    server = await startFileServer({ file: testModelPath() });
    const store = newStore({ huggingFaceBaseUrl: server.url("") });
    const { record } = await store.pull(
      "smollm2",
      "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/model.gguf@v1.0",
    );
    expect(server.requests[0]!.path).toBe(
      "/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/v1.0/model.gguf",
    );
    expect(record).toMatchObject({
      source: "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/model.gguf@v1.0",
      url: server.url("/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/v1.0/model.gguf"),
      sha256: TEST_MODEL.sha256,
    });
  });

  it("resolves a model to a ModelSpec with its path and memory estimate, and refuses one that does not fit", async () => {
    const store = newStore({ allowedDirs: [dirname(testModelPath())], localImport: "link" });
    await store.pull("smollm2", testModelPath());
    const spec = await store.resolve("smollm2");
    expect(spec).toMatchObject({ name: "smollm2", format: "gguf", path: store.blobPath(TEST_MODEL.sha256) });
    expect(spec.contextSize).toBe(8192);
    // 94 MiB of weights + 180 MiB of KV cache + overhead.
    expect(spec.memoryBytes).toBeGreaterThan(TEST_MODEL.bytes + 188_743_680);
    expect(spec.memoryBytes).toBeLessThan(1024 ** 3);
    expect((await store.resolve("smollm2", { contextSize: 2048 })).memoryBytes).toBeLessThan(
      spec.memoryBytes!,
    );

    const err = await store.resolve("smollm2", { freeBytes: 100 * MiB }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).code).toBe("insufficient_memory");
    expect((err as ModelError).message).toMatch(/KV cache at 8192 tokens.*; 0\.10 GiB free$/);
    expect(await codeOf(store.resolve("nope"))).toBe("model_not_found");
  });

  it("copies, links or records in place a local file from an allowed directory", async () => {
    const modelDir = dirname(testModelPath());
    const copy = newStore({ allowedDirs: [modelDir] });
    const copied = await copy.pull("a", testModelPath());
    expect(copied.record).toMatchObject({ sha256: TEST_MODEL.sha256, source: testModelPath() });
    expect((await stat(copy.blobPath(TEST_MODEL.sha256))).ino).not.toBe((await stat(testModelPath())).ino);

    const linked = newStore({ allowedDirs: [modelDir], localImport: "link" });
    await linked.pull("a", testModelPath());
    expect((await stat(linked.blobPath(TEST_MODEL.sha256))).ino).toBe((await stat(testModelPath())).ino);

    const inPlace = newStore({ allowedDirs: [modelDir], localImport: "in-place" });
    const { record } = await inPlace.pull("a", testModelPath());
    expect(record).toMatchObject({ sha256: TEST_MODEL.sha256, path: testModelPath() });
    expect(await listing(join(inPlace.dir, "blobs"))).toEqual([]);
    expect((await inPlace.resolve("a")).path).toBe(testModelPath());
    // Removing an in-place model never touches the owner's file.
    await inPlace.remove("a");
    expect((await stat(testModelPath())).size).toBe(TEST_MODEL.bytes);
  });

  it("notices an in-place file that changed after it was recorded", async () => {
    const owner = join(workDir(), "owner");
    const path = await tinyGguf(owner, "tiny-a");
    const store = newStore({ allowedDirs: [owner], localImport: "in-place" });
    await store.pull("tiny", path);
    await utimes(path, new Date(), new Date(Date.now() + 60_000));
    expect(await codeOf(store.resolve("tiny"))).toBe("model_changed");
  });

  it("refuses local files outside the allowed directories, and bad names", async () => {
    const store = newStore();
    expect(await codeOf(store.pull("x", testModelPath()))).toBe("path_not_allowed");
    expect(await codeOf(store.pull("../x", testModelPath()))).toBe("invalid_model_name");
    expect(await codeOf(store.pull("x", "models/x.gguf"))).toBe("invalid_source");
    expect(await store.list()).toEqual([]);
  });

  it("keeps one blob for two names and frees it when the last name is removed", async () => {
    const owner = join(workDir(), "owner");
    const path = await tinyGguf(owner, "tiny-a");
    const store = newStore({ allowedDirs: [owner] });
    const first = await store.pull("one", path);
    await store.pull("two", path);
    const blob = store.blobPath(first.record.sha256!);
    expect(await listing(join(store.dir, "blobs"))).toEqual([`sha256-${first.record.sha256}`]);

    expect(await store.remove("one")).toMatchObject({ blobRemoved: false });
    expect((await stat(blob)).isFile()).toBe(true);
    expect(await store.remove("two")).toMatchObject({ blobRemoved: true });
    await expect(stat(blob)).rejects.toThrow();
    expect(await store.list()).toEqual([]);
    expect(await codeOf(store.remove("two"))).toBe("model_not_found");
  });

  it("frees the old blob when a name is pulled again with other content", async () => {
    const owner = join(workDir(), "owner");
    const store = newStore({ allowedDirs: [owner] });
    const a = await store.pull("m", await tinyGguf(owner, "tiny-a"));
    const b = await store.pull("m", await tinyGguf(owner, "tiny-b"));
    expect(a.record.sha256).not.toBe(b.record.sha256);
    expect(await listing(join(store.dir, "blobs"))).toEqual([`sha256-${b.record.sha256}`]);
    expect((await store.list()).map((r) => r.name)).toEqual(["m"]);
  });

  it("refuses a checksum mismatch and leaves nothing in the store", async () => {
    server = await startFileServer({ file: testModelPath() });
    const store = newStore();
    expect(await codeOf(store.pull("m", server.url(), { expectedSha256: "1".repeat(64) }))).toBe(
      "checksum_mismatch",
    );
    expect(await store.list()).toEqual([]);
    expect(await listing(join(store.dir, "blobs"))).toEqual([]);
    expect(await listing(join(store.dir, "downloads"))).toEqual([]);
  });

  it("refuses a download that is not GGUF and leaves nothing in the store", async () => {
    const notModel = join(workDir(), "index.html");
    await writeFile(notModel, "<html>sign in to download</html>");
    server = await startFileServer({ file: notModel });
    const store = newStore();
    expect(await codeOf(store.pull("m", server.url()))).toBe("invalid_gguf");
    expect(await store.list()).toEqual([]);
    expect(await listing(join(store.dir, "blobs"))).toEqual([]);
    expect(await listing(join(store.dir, "downloads"))).toEqual([]);
  });

  it("skips the download when the expected blob is already in the store", async () => {
    server = await startFileServer({ file: testModelPath() });
    const store = newStore({ allowedDirs: [dirname(testModelPath())], localImport: "link" });
    await store.pull("local", testModelPath());
    const { record } = await store.pull("remote", server.url(), { expectedSha256: TEST_MODEL.sha256 });
    expect(server.requests).toHaveLength(0);
    expect(record).toMatchObject({ name: "remote", sha256: TEST_MODEL.sha256, url: server.url() });
  });

  it("keeps the partial download when a pull is cancelled, resumes it on the next pull, and refuses a second concurrent pull", async () => {
    server = await startFileServer({ file: testModelPath(), stallAfterBytes: 16 * MiB });
    const store = newStore();
    const controller = new AbortController();
    const first = store.pull("m", server.url(), {
      signal: controller.signal,
      onProgress: (p) => {
        if ((p.completed ?? 0) >= 16 * MiB) controller.abort(new Error("cancelled"));
      },
    });
    expect(await codeOf(store.pull("other", server.url()))).toBe("pull_in_progress");
    await expect(first).rejects.toThrow("cancelled");
    const partials = (await listing(join(store.dir, "downloads"))).filter((f) => f.endsWith(".partial"));
    expect(partials).toHaveLength(1);
    expect(await store.list()).toEqual([]);

    const { record } = await store.pull("m", server.url(), { expectedSha256: TEST_MODEL.sha256 });
    expect(record.sha256).toBe(TEST_MODEL.sha256);
    expect(server.requests.at(-1)!.range).toBe(`bytes=${16 * MiB}-`);
  });

  it("lets the pull asked first go on when a second one of the same source comes at once, whatever the names cost to check", async () => {
    server = await startFileServer({ file: testModelPath() });
    const owner = join(workDir(), "owner");
    const store = newStore({ allowedDirs: [owner] });
    // The first pull's name has a record to read; the second's has none (a faster check).
    await store.pull("m", await tinyGguf(owner, "tiny-m"));
    for (let round = 0; round < 5; round++) {
      const first = store.pull("m", server.url(), { expectedSha256: TEST_MODEL.sha256 });
      const second = store.pull(`other-${round}`, server.url());
      expect(await codeOf(second)).toBe("pull_in_progress");
      expect((await first).record.sha256).toBe(TEST_MODEL.sha256);
    }
  });

  it("records ollama: sources for the Ollama engine to pull, without downloading", async () => {
    const store = newStore();
    const result = await store.pull("llama3.2:1b", "ollama:llama3.2:1b");
    expect(result.status).toBe("ollama");
    if (result.status !== "ollama") return;
    expect(result.ollamaName).toBe("llama3.2:1b");
    expect(result.message).toContain("Ollama engine");
    expect(result.record).toMatchObject({
      format: "ollama",
      ollamaName: "llama3.2:1b",
      sha256: null,
      size: null,
    });
    expect(await readdir(join(store.dir, "models"))).toEqual(["llama3.2%3a1b.json"]);
    expect(await store.resolve("llama3.2:1b")).toEqual({
      name: "llama3.2:1b",
      format: "ollama",
      ollamaName: "llama3.2:1b",
      contextSize: undefined,
    });
    const updated = await store.updateOllamaRecord("llama3.2:1b", { sha256: "a".repeat(64), size: 1234 });
    expect(await store.get("llama3.2:1b")).toEqual(updated);
    expect(updated).toMatchObject({ sha256: "a".repeat(64), size: 1234 });
  });

  it("reports a damaged record from get() and leaves it out of list()", async () => {
    const owner = join(workDir(), "owner");
    const store = newStore({ allowedDirs: [owner] });
    await store.pull("good", await tinyGguf(owner, "tiny-a"));
    await writeFile(join(store.dir, "models", "bad.json"), "{ not json");
    expect((await store.list()).map((r) => r.name)).toEqual(["good"]);
    expect(await codeOf(store.get("bad"))).toBe("record_corrupt");
  });
});
