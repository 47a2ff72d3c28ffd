import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "@beta9/http";
import type { Beta9Error } from "@beta9/protocol";
import { tempDir, testConverterPython, testModelPath, testPython } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chooseNamed } from "../engines/testing/choose-named.ts";
import { oneH100 } from "../engines/testing/machines.ts";
import { stub, stubPath } from "../engines/testing/stub-path.ts";
import { VllmEngine } from "../engines/vllm.ts";
import { safetensorsDir } from "../models/convert/gguf-to-hf.ts";
import { ModelStore } from "../models/store.ts";
import { InferenceManager } from "./manager.ts";
import { StoreCatalog } from "./model-catalog.ts";

/*
 * A GGUF started on an engine that serves no GGUF (vLLM, named by a deployment on an H100 box): the
 * agent dequantises it to a safetensors repository once (the real converter, Debian's torch), starts
 * the engine on that directory, and reuses it on every later start. vLLM itself needs a GPU: the
 * stand-in answers as recorded from the real server and writes down the command line it was given.
 */

const standIns = fileURLToPath(new URL("../engines/testing/python", import.meta.url));
let store: ModelStore;
let record: string;
let manager: InferenceManager;
const envBefore = process.env.BETA9_CONVERT_PYTHON;

beforeAll(async () => {
  process.env.BETA9_CONVERT_PYTHON = testConverterPython();
  const model = testModelPath();
  store = new ModelStore({
    dir: tempDir("b9-convert-for-"),
    allowedDirs: [dirname(model)],
    localImport: "link",
  });
  await store.pull("smol", model);
  const bin = await stubPath();
  record = join(bin, "record.json");
  await stub(
    bin,
    "vllm",
    `#!/bin/sh\nexec '${testPython()}' '${join(standIns, "fake_openai_engine.py")}' "$@"\n`,
  );
  const vllm = new VllmEngine({
    pathEnv: `${bin}:/usr/bin:/bin`,
    env: { FAKE_ENGINE_RECORD: record },
    probeIntervalMs: 50,
  });
  manager = new InferenceManager({
    engines: new Map([["vllm", vllm]]),
    catalog: new StoreCatalog(store),
    // As the agent chooses: a named engine is that engine or a refusal.
    choose: chooseNamed,
    hardware: oneH100,
    usage: () => null,
    log: createLogger({ name: "test", level: "warn" }),
    watchIntervalMs: 0,
  });
}, 120_000);

afterAll(async () => {
  await manager?.shutdown();
  if (envBefore === undefined) delete process.env.BETA9_CONVERT_PYTHON;
  else process.env.BETA9_CONVERT_PYTHON = envBefore;
});

const argv = async () => (JSON.parse(await readFile(record, "utf8")) as { argv: string[] }).argv;

describe("a GGUF for an engine that serves only safetensors", () => {
  it("is dequantised once, served by vLLM (stand-in) from the repository made, and says so", async () => {
    const served = await manager.start({ model: "smol", engine: "vllm" });
    expect(served.engine).toBe("vllm");
    expect(served.state()).toBe("ready");
    const [verb, dir] = await argv();
    expect(verb).toBe("serve");
    expect(dirname(dir!)).toBe(safetensorsDir(store));
    expect((await readdir(dir!)).sort()).toEqual(
      expect.arrayContaining(["config.json", "model.safetensors", "tokenizer.json", "b9-conversion.json"]),
    );
    // Its provenance names the stored GGUF it came from, by content.
    const made = JSON.parse(await readFile(join(dir!, "b9-conversion.json"), "utf8")) as {
      converted_from: { sha256: string; format: string; target: string };
    };
    const gguf = (await store.get("smol"))!;
    expect(made.converted_from).toMatchObject({ sha256: gguf.sha256, format: "gguf", target: "float16" });
    // What the machine reports: vLLM, the converted format, and the float16 weights' size (not the GGUF's).
    const [view] = manager.models();
    const weights = (await stat(join(dir!, "model.safetensors"))).size;
    expect(view).toMatchObject({ name: "smol", engine: "vllm", state: "ready", converted_to: "safetensors" });
    expect(view!.memory_bytes).toBe(weights);
    expect(weights).toBeGreaterThan(2 * (gguf.size ?? Number.POSITIVE_INFINITY));

    // Started again: the same repository, not converted a second time.
    const madeAt = (await stat(join(dir!, "b9-conversion.json"))).mtimeMs;
    await manager.stop("smol");
    await manager.start({ model: "smol", engine: "vllm" });
    expect((await argv())[1]).toBe(dir);
    expect((await stat(join(dir!, "b9-conversion.json"))).mtimeMs).toBe(madeAt);
    expect((await readdir(safetensorsDir(store))).filter((n) => n.startsWith("sha256-"))).toHaveLength(1);
    await manager.stop("smol");
  }, 240_000);

  it("without a converter on the machine: refused with the model, the engine and how to install one", async () => {
    delete process.env.BETA9_CONVERT_PYTHON;
    try {
      const err = await manager.start({ model: "smol", engine: "vllm" }).then(
        () => undefined,
        (e: unknown) => e as Beta9Error,
      );
      expect(err?.code).toBe("converter_unavailable");
      expect(err?.message).toMatch(/^smol is GGUF and no engine here serves GGUF.*for vllm: .*python3-torch/);
      expect(manager.models()).toEqual([
        expect.objectContaining({ name: "smol", engine: "vllm", state: "error" }),
      ]);
    } finally {
      process.env.BETA9_CONVERT_PYTHON = process.env.BETA9_TEST_CONVERT_PYTHON;
    }
  });
});
