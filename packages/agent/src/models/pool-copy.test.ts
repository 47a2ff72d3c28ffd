import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PoolDirOffer } from "@beta9/protocol";
import { type FileServer, servePythonFolder, tempDir } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { safetensorsDir } from "./convert/gguf-to-hf.ts";
import { type HfFile, hfDirSha256 } from "./convert/hf-tools.ts";
import { fetchPoolDir, type PoolAccess } from "./pool-copy.ts";
import { ModelStore } from "./store.ts";

/*
 * A converted directory copied from another machine, with what that machine sends it laid out on
 * python's http.server at the gateway's paths (the gateway only relays the holder's bytes). What the
 * holder claims is checked: its file list must hash to the offer's sha256, every file to its sha256 in
 * that list, and the list may name only plain files. A copy that fails keeps nothing.
 */

let server: FileServer;
let served: string;
const access: PoolAccess = {
  gateway: () => `http://127.0.0.1:${server.port}/`,
  machine: () => ({ id: "m-bare", token: "b9m_test" }),
};
const converted_from = {
  name: "smol",
  sha256: "a".repeat(64),
  format: "gguf",
  quantization: "Q4_1",
  target: "float16",
  converter: {
    tool: "transformers",
    version: "transformers GGUF loader; torch 1.13.0",
    args: ["--dtype", "float16"],
  },
};
const sha = (text: string) => createHash("sha256").update(text).digest("hex");

beforeAll(async () => {
  served = tempDir("b9-copies-");
  server = await servePythonFolder(served);
});

afterAll(async () => {
  await server?.stop();
});

/** What a holder publishes for a directory: its files and its list, under the sha256 it claims. */
async function publish(
  claimed: string,
  files: { name: string; body: string }[],
  listed: HfFile[] = files.map((f) => ({ name: f.name, sha256: sha(f.body), size: f.body.length })),
): Promise<PoolDirOffer> {
  const at = join(served, "api/v1/agent/copies", claimed);
  await mkdir(at, { recursive: true });
  for (const f of files) await writeFile(join(at, f.name), f.body);
  await writeFile(
    join(at, "b9-conversion.json"),
    JSON.stringify({ sha256: claimed, files: listed, owner: "ws-1", converted_from }),
  );
  return {
    ticket: "t".repeat(43),
    sha256: claimed,
    size: files.reduce((n, f) => n + f.body.length, 0),
    machine_name: "converter",
    converted_from,
    format: "safetensors",
  };
}

const files = [
  { name: "config.json", body: '{"architectures":["LlamaForCausalLM"]}' },
  { name: "model.safetensors", body: "weights ".repeat(5000) },
  { name: "tokenizer.json", body: '{"model":{"type":"BPE"}}' },
];
const honest = () =>
  hfDirSha256(files.map((f) => ({ name: f.name, sha256: sha(f.body), size: f.body.length })));

function freshStore(): ModelStore {
  return new ModelStore({ dir: tempDir("b9-copy-store-") });
}
const leftInRoot = (store: ModelStore) =>
  existsSync(safetensorsDir(store)) ? readdirSync(safetensorsDir(store)) : [];

describe("copying another machine's converted directory", () => {
  it("keeps it under the sha256 of its files, naming the machine that made it", async () => {
    const store = freshStore();
    const offer = await publish(honest(), files);
    const dir = await fetchPoolDir(store, access, {
      name: "smol",
      root: safetensorsDir(store),
      offer,
      owner: "ws-1",
    });
    expect(dir.sha256).toBe(offer.sha256);
    expect(dir.dir).toBe(join(safetensorsDir(store), `sha256-${offer.sha256}`));
    expect(dir.converted_from).toMatchObject({ ...converted_from, converted_on: "converter" });
    expect(readdirSync(dir.dir).sort()).toEqual([
      "b9-conversion.json",
      "config.json",
      "model.safetensors",
      "tokenizer.json",
    ]);
    // Asked again, it is found here: nothing fetched (the server's copy is gone).
    await writeFile(join(served, "api/v1/agent/copies", offer.sha256, "model.safetensors"), "gone");
    expect(
      (await fetchPoolDir(store, access, { name: "smol", root: safetensorsDir(store), offer, owner: "ws-1" }))
        .dir,
    ).toBe(dir.dir);
    expect(leftInRoot(store)).toEqual([`sha256-${offer.sha256}`]);
  });

  it("refuses a file list that does not hash to the offer, a file that does not match its list, and names that are not plain files", async () => {
    const claimed = "c".repeat(64);
    const lying = await publish(claimed, files);
    const store = freshStore();
    const copy = (offer: PoolDirOffer) =>
      fetchPoolDir(store, access, { name: "smol", root: safetensorsDir(store), offer, owner: "ws-1" });
    await expect(copy(lying)).rejects.toMatchObject({
      code: "checksum_mismatch",
      message: expect.stringMatching(/list of files does not hash to the conversion's sha256/),
    });

    // A list that is honest about itself, and a file that is not what it lists.
    const listed = files.map((f) => ({ name: f.name, sha256: sha(f.body), size: f.body.length }));
    const tampered = await publish(
      honest(),
      files.map((f) => (f.name === "model.safetensors" ? { ...f, body: "tampered".repeat(5000) } : f)),
      listed,
    );
    await expect(copy(tampered)).rejects.toMatchObject({ code: "checksum_mismatch" });

    // A list whose hash is made to match, naming a path out of the directory.
    const outside = [{ name: "../../models/evil.json", sha256: sha("x"), size: 1 }];
    const escaping = await publish(hfDirSha256(outside), [], outside);
    await expect(copy(escaping)).rejects.toMatchObject({
      code: "checksum_mismatch",
      message: expect.stringMatching(/no plain file name/),
    });
    expect(leftInRoot(store)).toEqual([]);
    expect(existsSync(join(store.dir, "models", "evil.json"))).toBe(false);
  });
});
