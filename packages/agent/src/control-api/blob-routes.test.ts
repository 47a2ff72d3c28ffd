import { createHash } from "node:crypto";
import { link, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createLogger } from "@beta9/http";
import { TEST_MODEL, tempDir, testModelAs, testModelPath } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keepConverted, safetensorsDir } from "../models/convert/gguf-to-hf.ts";
import { type ConvertedFrom, ModelStore } from "../models/store.ts";
import { blobRoutes } from "./blob-routes.ts";
import { ControlServer } from "./server.ts";

/*
 * The holder's side of a pool copy: the agent serves a conversion's bytes to the gateway only, only for
 * the owner it was made for, and by ranges so a cut copy resumes. A real store, the real test model.
 */

let store: ModelStore;
let server: ControlServer;
let sha256: string;
let size: number;
let whole: Buffer;
let gatewayAsks = true;
let converted_from: ConvertedFrom;
const owner = "ws-1";

beforeAll(async () => {
  store = new ModelStore({ dir: tempDir("b9-blobs-"), allowedDirs: [dirname(testModelPath())] });
  // A "conversion" of the test model, as quantizeModel would record it: other bytes than the plain pull's.
  const file = await store.tempBlobPath();
  await link(await testModelAs("llamb", tempDir("b9-blobs-src-")), file);
  converted_from = {
    name: "smol.source",
    sha256: TEST_MODEL.sha256,
    format: "gguf" as const,
    quantization: "Q4_1",
    target: "Q4_1",
    converter: { tool: "llama-quantize", version: "test", args: [] },
  };
  const made = await store.addConverted("smol", file, { source: "x", converted_from }, { owner });
  sha256 = made.sha256;
  size = made.size;
  whole = await readFile(store.blobPath(sha256));
  await store.pull("plain", testModelPath(), { owner, sourceTrusted: true });
  server = new ControlServer(createLogger({ name: "test", level: "warn" }));
  await server.app.register(blobRoutes, { store, fromGateway: () => gatewayAsks });
  await server.app.ready();
}, 60_000);

afterAll(async () => {
  await server?.close();
});

const get = (path: string, headers: Record<string, string> = {}) =>
  server.app.inject({ method: "GET", url: path, headers });

describe("GET /models/blobs/<sha256>: a conversion's bytes for the gateway", () => {
  it("sends the whole conversion, which hashes to its name", async () => {
    const res = await get(`/models/blobs/${sha256}?owner=${owner}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-length"]).toBe(String(size));
    expect(res.headers.etag).toBe(`"${sha256}"`);
    expect(createHash("sha256").update(res.rawPayload).digest("hex")).toBe(sha256);
  });

  it("sends a range, for a copy that resumes; a range past the end is 416; an old validator gets it whole", async () => {
    const part = await get(`/models/blobs/${sha256}?owner=${owner}`, {
      range: "bytes=1000-",
      "if-range": `"${sha256}"`,
    });
    expect(part.statusCode).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 1000-${size - 1}/${size}`);
    expect(part.rawPayload.equals(whole.subarray(1000))).toBe(true);
    const closed = await get(`/models/blobs/${sha256}?owner=${owner}`, { range: "bytes=10-19" });
    expect(closed.statusCode).toBe(206);
    expect(closed.rawPayload.equals(whole.subarray(10, 20))).toBe(true);
    const past = await get(`/models/blobs/${sha256}?owner=${owner}`, { range: `bytes=${size}-` });
    expect(past.statusCode).toBe(416);
    expect(past.headers["content-range"]).toBe(`bytes */${size}`);
    const changed = await get(`/models/blobs/${sha256}?owner=${owner}`, {
      range: "bytes=1000-",
      "if-range": '"other"',
    });
    expect(changed.statusCode).toBe(200);
    expect(changed.rawPayload.length).toBe(size);
  });

  it("refuses another owner, a model that is no conversion, a bad name, and any caller but the gateway", async () => {
    expect((await get(`/models/blobs/${sha256}?owner=ws-2`)).statusCode).toBe(404);
    expect((await get(`/models/blobs/${sha256}`)).statusCode).toBe(404);
    // The plain pull's blob is the same bytes, but only a conversion is handed on.
    expect(sha256).not.toBe(TEST_MODEL.sha256);
    expect((await get(`/models/blobs/${TEST_MODEL.sha256}?owner=${owner}`)).statusCode).toBe(404);
    expect((await get(`/models/blobs/../models/smol.json?owner=${owner}`)).statusCode).toBe(404);
    expect((await get(`/models/blobs/${sha256.toUpperCase()}?owner=${owner}`)).statusCode).toBe(400);
    gatewayAsks = false;
    try {
      const local = await get(`/models/blobs/${sha256}?owner=${owner}`);
      expect(local.statusCode).toBe(403);
      expect(local.json()).toMatchObject({ error: { code: "forbidden" } });
    } finally {
      gatewayAsks = true;
    }
  });

  it("a converted directory: its file list and the files it lists, nothing else, for its owner", async () => {
    const files = [
      { name: "config.json", body: '{"architectures":["LlamaForCausalLM"]}' },
      { name: "model.safetensors", body: "weights".repeat(1000) },
    ];
    const tmp = join(safetensorsDir(store), ".tmp-test");
    await mkdir(tmp, { recursive: true });
    for (const f of files) await writeFile(join(tmp, f.name), f.body);
    await writeFile(join(tmp, "notes.txt"), "not part of the conversion");
    const dir = await keepConverted(tmp, safetensorsDir(store), {
      owner,
      converted_from: { ...converted_from, target: "float16" },
    });
    const path = (file: string, who = owner) => `/models/converted/${dir.sha256}/${file}?owner=${who}`;
    const listing = await get(path("b9-conversion.json"));
    expect(listing.statusCode).toBe(200);
    expect(listing.json()).toMatchObject({ sha256: dir.sha256, files: dir.files });
    const weights = await get(path("model.safetensors"), { range: "bytes=7-" });
    expect(weights.statusCode).toBe(206);
    expect(weights.body).toBe("weights".repeat(1000).slice(7));
    expect(weights.headers.etag).toBe(`"${dir.files.find((f) => f.name === "model.safetensors")!.sha256}"`);
    // A file in the directory that the list does not name, a path out of it, another owner: not served.
    expect((await get(path("notes.txt"))).statusCode).toBe(404);
    expect((await get(path("..%2F..%2Fmodels%2Fsmol.json"))).statusCode).toBe(404);
    expect((await get(path("config.json", "ws-2"))).statusCode).toBe(404);
  });
});
