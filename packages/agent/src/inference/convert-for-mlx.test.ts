import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLogger } from "@beta9/http";
import type { Beta9Error } from "@beta9/protocol";
import { tempDir, testConverterPython, testModelPath, testPython } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MlxEngine } from "../engines/mlx.ts";
import { chooseNamed } from "../engines/testing/choose-named.ts";
import { macStudio } from "../engines/testing/machines.ts";
import { stub, stubPath } from "../engines/testing/stub-path.ts";
import { safetensorsDir } from "../models/convert/gguf-to-hf.ts";
import { mlxBitsFor, mlxDir } from "../models/convert/to-mlx.ts";
import { ModelStore } from "../models/store.ts";
import { InferenceManager } from "./manager.ts";
import { StoreCatalog } from "./model-catalog.ts";

/*
 * A GGUF started on MLX (mlx_lm.server, named by a deployment on a Mac): the agent dequantises it to a
 * float16 safetensors repository once (the real converter, Debian's torch), has mlx-lm's
 * `mlx_lm.convert` make an MLX model of it at about the GGUF's bits, starts mlx_lm.server on that, and
 * reuses it on every later start. MLX needs Apple Silicon: `mlx_lm.convert` and `mlx_lm.server` are
 * stand-ins taking the real tools' arguments (the server answers as recorded from the real servers).
 */

const standIns = fileURLToPath(new URL("../engines/testing/python", import.meta.url));
let store: ModelStore;
let bin: string;
let serverRecord: string;
let convertRecord: string;
const envBefore = process.env.BETA9_CONVERT_PYTHON;

function managerFor(engine: MlxEngine, on: ModelStore = store): InferenceManager {
  return new InferenceManager({
    engines: new Map([["mlx", engine]]),
    catalog: new StoreCatalog(on, { mlx: engine }),
    choose: chooseNamed,
    hardware: macStudio,
    usage: () => null,
    log: createLogger({ name: "test", level: "warn" }),
    watchIntervalMs: 0,
  });
}

const mlxOn = (path: string) =>
  new MlxEngine({
    pathEnv: `${path}:/usr/bin:/bin`,
    env: { FAKE_ENGINE_RECORD: serverRecord },
    probeIntervalMs: 50,
  });

beforeAll(async () => {
  process.env.BETA9_CONVERT_PYTHON = testConverterPython();
  const model = testModelPath();
  store = new ModelStore({
    dir: tempDir("b9-convert-mlx-"),
    allowedDirs: [dirname(model)],
    localImport: "link",
  });
  await store.pull("smol", model);
  bin = await mlxTools({ env: "" });
  serverRecord = join(bin, "server.json");
  convertRecord = join(bin, "convert.jsonl");
}, 120_000);

afterAll(() => {
  if (envBefore === undefined) delete process.env.BETA9_CONVERT_PYTHON;
  else process.env.BETA9_CONVERT_PYTHON = envBefore;
});

const conversions = async () =>
  (await readFile(convertRecord, "utf8").catch(() => ""))
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as string[]);
const made = async (on: ModelStore = store) => (await readdir(mlxDir(on)).catch(() => [] as string[])).sort();

/** A PATH with mlx_lm.server and, unless `convert` is null, an mlx_lm.convert that runs with `env`. */
async function mlxTools(convert: { env: string } | null): Promise<string> {
  const path = await stubPath();
  await stub(
    path,
    "mlx_lm.server",
    `#!/bin/sh\nexec '${testPython()}' '${join(standIns, "fake_openai_engine.py")}' "$@"\n`,
  );
  if (convert)
    await stub(
      path,
      "mlx_lm.convert",
      `#!/bin/sh\n${convert.env} exec '${testPython()}' '${join(standIns, "fake_mlx_convert.py")}' '${join(path, "convert.jsonl")}' "$@"\n`,
    );
  return path;
}

describe("a GGUF for MLX (stand-ins for mlx_lm.convert and mlx_lm.server: MLX needs Apple Silicon)", () => {
  it("is made an MLX model once at about the GGUF's bits, served by mlx_lm.server from it, and says so", async () => {
    const manager = managerFor(mlxOn(bin));
    try {
      const served = await manager.start({ model: "smol", engine: "mlx" });
      expect(served.engine).toBe("mlx");
      expect(served.state()).toBe("ready");

      // mlx_lm.convert read the float16 repository made from the GGUF and quantised to the GGUF's bits.
      const gguf = (await store.get("smol"))!;
      const bits = mlxBitsFor(gguf.quantization);
      expect(gguf.quantization).toBe("Q4_1");
      expect(bits).toBe(4);
      const [args] = await conversions();
      expect(args!.slice(0, 2)).toEqual(["--hf-path", expect.stringContaining(safetensorsDir(store))]);
      expect(args!.slice(2, 4)).toEqual(["--mlx-path", expect.stringMatching(/\/mlx\/\.tmp-[0-9a-f]+$/)]);
      expect(args!.slice(4)).toEqual(["-q", "--q-bits", "4", "--q-group-size", "64"]);

      // The server loads the kept MLX folder, whose provenance names the GGUF by content.
      const { argv } = JSON.parse(await readFile(serverRecord, "utf8")) as { argv: string[] };
      const dir = argv[argv.indexOf("--model") + 1]!;
      expect(dirname(dir)).toBe(mlxDir(store));
      expect(argv).toEqual(expect.arrayContaining(["--host", "127.0.0.1"]));
      const conversion = JSON.parse(await readFile(join(dir, "b9-conversion.json"), "utf8")) as {
        converted_from: { sha256: string; format: string; target: string; converter: { tool: string } };
      };
      expect(conversion.converted_from).toMatchObject({
        sha256: gguf.sha256,
        format: "gguf",
        target: "mlx 4-bit",
        converter: { tool: "mlx_lm.convert" },
      });
      const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as {
        quantization?: unknown;
      };
      expect(config.quantization).toEqual({ group_size: 64, bits: 4 });
      const [view] = manager.models();
      expect(view).toMatchObject({ name: "smol", engine: "mlx", state: "ready", converted_to: "mlx" });
      // The float16 repository made on the way is gone (about 4× the GGUF on disk); the MLX model stays.
      expect(
        (await readdir(safetensorsDir(store)).catch(() => [])).filter((n) => n.startsWith("sha256-")),
      ).toEqual([]);

      // Started again: the same folder, no second conversion.
      await manager.stop("smol");
      await manager.start({ model: "smol", engine: "mlx" });
      expect(await conversions()).toHaveLength(1);
      const again = (JSON.parse(await readFile(serverRecord, "utf8")) as { argv: string[] }).argv;
      expect(again[again.indexOf("--model") + 1]).toBe(dir);
      expect((await made()).filter((n) => n.startsWith("sha256-"))).toHaveLength(1);
      await manager.stop("smol");
    } finally {
      await manager.shutdown();
    }
  }, 240_000);

  describe("on a machine that has not made it yet", () => {
    let other: ModelStore;
    beforeAll(async () => {
      other = new ModelStore({
        dir: tempDir("b9-convert-mlx-other-"),
        allowedDirs: [dirname(testModelPath())],
        localImport: "link",
      });
      await other.pull("smol", testModelPath());
    }, 120_000);

    it("a converter that fails: conversion_failed with the model, the step and the tool's reason; nothing kept", async () => {
      const manager = managerFor(mlxOn(await mlxTools({ env: "FAKE_CONVERT_FAIL=1" })), other);
      try {
        const err = await manager.start({ model: "smol", engine: "mlx" }).then(
          () => undefined,
          (e: unknown) => e as Beta9Error,
        );
        expect(err?.code).toBe("conversion_failed");
        expect(err?.message).toMatch(
          /^smol is GGUF and no engine here serves GGUF, so it was to be converted to MLX for mlx: converting smol from GGUF to mlx 4-bit failed at converting: .*Model type fakearch not supported/,
        );
        expect(manager.models()).toEqual([
          expect.objectContaining({ name: "smol", engine: "mlx", state: "error" }),
        ]);
        expect(await made(other)).toEqual([]);
      } finally {
        await manager.shutdown();
      }
    }, 240_000);

    it("without mlx_lm.convert beside the server: refused with the model, the engine and how to install it", async () => {
      const manager = managerFor(mlxOn(await mlxTools(null)), other);
      try {
        const err = await manager.start({ model: "smol", engine: "mlx" }).then(
          () => undefined,
          (e: unknown) => e as Beta9Error,
        );
        expect(err?.code).toBe("converter_unavailable");
        expect(err?.message).toMatch(
          /^smol is GGUF and no engine here serves GGUF, so it was to be converted to MLX for mlx: mlx_lm\.convert was not found beside mlx_lm\.server; pip install mlx-lm/,
        );
        expect(await made(other)).toEqual([]);
      } finally {
        await manager.shutdown();
      }
    });
  });
});
