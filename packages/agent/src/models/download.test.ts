import { copyFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { TEST_MODEL, tempDir, testModelPath } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { type DownloadProgress, download, partialInfoPath, partialPath } from "./download.ts";
import { ModelError } from "./model-error.ts";
import { type FileServer, startFileServer } from "./testing/file-server.ts";

const MiB = 1024 * 1024;
const fast = { retryDelayMs: 5, progressIntervalMs: 0 };

let server: FileServer | undefined;
let dirs: string[] = [];

function workDir(): string {
  const dir = tempDir("b9-download-");
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await server?.close();
  server = undefined;
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  dirs = [];
});

async function expectModelError(promise: Promise<unknown>, code: string): Promise<ModelError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).code).toBe(code);
  return err as ModelError;
}

describe("download", () => {
  it("downloads the real GGUF, reports progress and verifies its sha256", async () => {
    server = await startFileServer({ file: testModelPath() });
    const dest = join(workDir(), "model.gguf");
    const progress: DownloadProgress[] = [];
    const result = await download(server.url(), dest, {
      ...fast,
      expectedSha256: TEST_MODEL.sha256,
      onProgress: (p) => progress.push(p),
    });
    expect(result).toMatchObject({
      path: dest,
      sha256: TEST_MODEL.sha256,
      size: TEST_MODEL.bytes,
      resumed: false,
    });
    expect((await stat(dest)).size).toBe(TEST_MODEL.bytes);
    await expect(stat(partialPath(dest))).rejects.toThrow();
    await expect(stat(partialInfoPath(dest))).rejects.toThrow();
    expect(progress.at(-1)).toEqual({ completed: TEST_MODEL.bytes, total: TEST_MODEL.bytes });
    for (let i = 1; i < progress.length; i++) {
      expect(progress[i]!.completed).toBeGreaterThanOrEqual(progress[i - 1]!.completed);
    }
  });

  it("resumes with Range after the server cuts the connection midway, and ends verified", async () => {
    server = await startFileServer({ file: testModelPath(), cutAfterBytes: 30 * MiB });
    const dest = join(workDir(), "model.gguf");
    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result).toMatchObject({
      sha256: TEST_MODEL.sha256,
      size: TEST_MODEL.bytes,
      resumed: true,
      attempts: 2,
    });
    expect(server.requests).toHaveLength(2);
    const [first, second] = server.requests;
    expect(first!.range).toBeUndefined();
    expect(second!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/\d+/.exec(second!.range!)![0])).toBeGreaterThan(0);
    expect(second!.ifRange).toBe('"v1"');
    expect(second!.status).toBe(206);
  });

  it("keeps the partial file when out of retries, and the next download resumes it", async () => {
    server = await startFileServer({ file: testModelPath(), cutAfterBytes: 40 * MiB });
    const dest = join(workDir(), "model.gguf");
    await expectModelError(download(server.url(), dest, { ...fast, retries: 0 }), "download_failed");
    const kept = (await stat(partialPath(dest))).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(40 * MiB);

    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result).toMatchObject({ sha256: TEST_MODEL.sha256, resumed: true, attempts: 1 });
    expect(server.requests.at(-1)!.range).toBe(`bytes=${kept}-`);
  });

  it("starts over from byte 0 when the server ignores Range (200), and still verifies", async () => {
    server = await startFileServer({ file: testModelPath(), cutAfterBytes: 20 * MiB, ignoreRange: true });
    const dest = join(workDir(), "model.gguf");
    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result).toMatchObject({ sha256: TEST_MODEL.sha256, size: TEST_MODEL.bytes, resumed: false });
    expect(server.requests[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(server.requests[1]!.status).toBe(200);
  });

  it("starts over when the file changed on the server between attempts (If-Range)", async () => {
    server = await startFileServer({ file: testModelPath(), cutAfterBytes: 20 * MiB });
    const dest = join(workDir(), "model.gguf");
    await expectModelError(download(server.url(), dest, { ...fast, retries: 0 }), "download_failed");
    server.options = { file: testModelPath(), etag: '"v2"' };
    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result.sha256).toBe(TEST_MODEL.sha256);
    expect(server.requests.at(-1)).toMatchObject({ ifRange: '"v1"', status: 200 });
  });

  it("refuses a checksum mismatch and leaves nothing behind", async () => {
    server = await startFileServer({ file: testModelPath() });
    const dir = workDir();
    const err = await expectModelError(
      download(server.url(), join(dir, "model.gguf"), { ...fast, expectedSha256: "0".repeat(64) }),
      "checksum_mismatch",
    );
    expect(err.message).toContain(TEST_MODEL.sha256);
    expect(await readdir(dir)).toEqual([]);
  });

  it("cancels on abort, keeps the partial file, and a later download resumes it", async () => {
    // The server goes quiet after 20 MiB, so the abort lands mid-body.
    server = await startFileServer({ file: testModelPath(), stallAfterBytes: 20 * MiB });
    const dest = join(workDir(), "model.gguf");
    const controller = new AbortController();
    const reason = new Error("user cancelled");
    const pending = download(server.url(), dest, {
      ...fast,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.completed >= 20 * MiB) controller.abort(reason);
      },
    });
    await expect(pending).rejects.toBe(reason);
    const kept = (await stat(partialPath(dest))).size;
    expect(kept).toBe(20 * MiB);

    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result).toMatchObject({ sha256: TEST_MODEL.sha256, resumed: true });
    expect(server.requests.at(-1)!.range).toBe(`bytes=${kept}-`);
  });

  it("treats a stalled body as a dead connection and resumes", async () => {
    server = await startFileServer({ file: testModelPath(), stallAfterBytes: 10 * MiB });
    const dest = join(workDir(), "model.gguf");
    const result = await download(server.url(), dest, {
      ...fast,
      stallTimeoutMs: 1000,
      expectedSha256: TEST_MODEL.sha256,
    });
    expect(result).toMatchObject({ sha256: TEST_MODEL.sha256, resumed: true, attempts: 2 });
    expect(server.requests[1]!.range).toBe(`bytes=${10 * MiB}-`);
  });

  it("finishes from a complete partial file when the server answers 416", async () => {
    server = await startFileServer({ file: testModelPath() });
    const dest = join(workDir(), "model.gguf");
    await copyFile(testModelPath(), partialPath(dest));
    await writeFile(partialInfoPath(dest), JSON.stringify({ url: server.url(), etag: '"v1"' }));
    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result).toMatchObject({ sha256: TEST_MODEL.sha256, size: TEST_MODEL.bytes, resumed: true });
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]!.status).toBe(416);
  });

  it("does not splice a partial file that came from another URL", async () => {
    server = await startFileServer({ file: testModelPath() });
    const dest = join(workDir(), "model.gguf");
    await writeFile(partialPath(dest), "not the model");
    await writeFile(partialInfoPath(dest), JSON.stringify({ url: "http://elsewhere.invalid/x.gguf" }));
    const result = await download(server.url(), dest, { ...fast, expectedSha256: TEST_MODEL.sha256 });
    expect(result.resumed).toBe(false);
    expect(server.requests[0]!.range).toBeUndefined();
  });

  it("fails at once on a 404 and retries a 503", async () => {
    server = await startFileServer({ file: testModelPath(), status: 404 });
    const dest = join(workDir(), "model.gguf");
    const err = await expectModelError(download(server.url(), dest, fast), "download_failed");
    expect(err.message).toContain("404");
    expect(server.requests).toHaveLength(1);

    server.options = { file: testModelPath(), status: 503 };
    await expectModelError(download(server.url(), dest, { ...fast, retries: 2 }), "download_failed");
    expect(server.requests).toHaveLength(4);
  });

  it("refuses a file over the size limit and keeps nothing", async () => {
    server = await startFileServer({ file: testModelPath() });
    const dir = workDir();
    await expectModelError(
      download(server.url(), join(dir, "model.gguf"), { ...fast, maxBytes: 1024 * 1024 }),
      "download_too_large",
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it("gives up on a server that accepts the connection but never answers", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      await expectModelError(
        download(`http://127.0.0.1:${port}/m.gguf`, join(workDir(), "m.gguf"), {
          ...fast,
          headersTimeoutMs: 200,
          retries: 1,
        }),
        "download_timeout",
      );
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it("rejects an expected sha256 that is not one", async () => {
    await expectModelError(
      download("http://127.0.0.1:9/x.gguf", join(workDir(), "x.gguf"), { expectedSha256: "abc" }),
      "invalid_checksum",
    );
  });
});
