import { basename } from "node:path";
import type { PullProgress } from "@beta9/protocol";
import {
  type FileServer,
  startPythonFileServer,
  TEST_MODEL,
  tempDir,
  testModelPath,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelStore } from "../models/store.ts";
import { StoreCatalog } from "./model-catalog.ts";

/*
 * A deployment's model asked twice at once on one machine (its cold start beside `b9 model pull`, or
 * the gateway keeping a minimum while the CLI pulls): one download both follow to the end, not a
 * second pull refused because the first is under way. The source is python's http.server.
 */

let files: FileServer;

beforeAll(async () => {
  files = await startPythonFileServer([testModelPath()]);
});

afterAll(async () => {
  await files?.stop();
});

describe("two identical pulls at once", () => {
  it("share one download, and each sees its progress and gets the model", async () => {
    const store = new ModelStore({ dir: tempDir("b9-together-"), allowPrivateSources: ["127.0.0.1"] });
    const catalog = new StoreCatalog(store);
    const url = files.url(basename(testModelPath()));
    const seen: PullProgress[][] = [[], []];
    const pull = (i: number) =>
      catalog.pull("smol", url, {
        onProgress: (p) => seen[i]!.push(p),
        signal: new AbortController().signal,
        owner: "ws-1",
      });
    const [a, b] = await Promise.all([pull(0), pull(1)]);
    expect(a).toMatchObject({ name: "smol", sha256: TEST_MODEL.sha256 });
    expect(b).toEqual(a);
    for (const lines of seen) expect(lines.some((p) => p.completed === TEST_MODEL.bytes)).toBe(true);
  }, 60_000);
});
