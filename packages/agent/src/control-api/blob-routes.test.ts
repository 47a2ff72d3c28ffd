import { createHash } from "node:crypto";
import { link, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createLogger } from "@beta9/http";
import { TEST_MODEL, tempDir, testModelAs, testModelPath } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelStore } from "../models/store.ts";
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
const owner = "ws-1";

beforeAll(async () => {
  store = new ModelStore({ dir: tempDir("b9-blobs-"), allowedDirs: [dirname(testModelPath())] });
  // A "conversion" of the test model, as quantizeModel would record it: other bytes than the plain pull's.
  const file = await store.tempBlobPath();
  await link(await testModelAs("llamb", tempDir("b9-blobs-src-")), file);
  const converted_from = {
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
});
