import { randomBytes } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { BITS_PER_WEIGHT } from "@beta9/protocol";
import type { PidfileRegistry } from "../../process/pidfiles.ts";
import { isModelError, ModelError } from "../model-error.ts";
import { afterOthers } from "../shared-run.ts";
import { type ConvertedFrom, exists, type ModelStore, type PullProgress } from "../store.ts";
import {
  findConverted,
  ggufToSafetensors,
  type HfModelDir,
  keepConverted,
  listConvertedDirs,
} from "./gguf-to-hf.ts";
import { ensureRoom, runTool } from "./run-tool.ts";

/*
 * A stored GGUF for MLX (mlx_lm.server on Apple Silicon): dequantised to a float16 safetensors
 * repository (gguf-to-hf.ts), then converted by mlx-lm's own `mlx_lm.convert`, installed beside
 * mlx_lm.server, quantised back to about the GGUF's bits so the model needs about the memory it did.
 * Quality is the GGUF's at best: quantised twice (GGUF, then MLX's own scheme), a Q4 model loses a
 * little more than either alone. Kept under <store>/mlx/ with b9-conversion.json and reused.
 */

/** The bits of MLX's affine quantisation for a GGUF type (null: an unquantised GGUF stays float16). */
export function mlxBitsFor(quantization: string | null): number | null {
  const bits = quantization === null ? undefined : BITS_PER_WEIGHT[quantization.toUpperCase()];
  if (bits === undefined || bits >= 16) return null;
  return bits <= 5 ? 4 : bits <= 7 ? 6 : 8;
}

/** How mlx_lm.convert is told to store the weights: quantised to `bits`, or float16. */
function mlxWeightArgs(bits: number | null): string[] {
  return bits === null ? ["--dtype", "float16"] : ["-q", "--q-bits", String(bits), "--q-group-size", "64"];
}

/** mlx_lm.convert's arguments for a repository `from`, written to `to` (which must not exist yet). */
export function mlxConvertArgs(from: string, to: string, bits: number | null): string[] {
  return ["--hf-path", from, "--mlx-path", to, ...mlxWeightArgs(bits)];
}

/** Where a store keeps MLX models made by conversion. */
export function mlxDir(store: ModelStore): string {
  return join(store.dir, "mlx");
}

export interface GgufToMlxRequest {
  /** The stored GGUF's name. */
  from: string;
  owner?: string | undefined;
  /** mlx_lm.convert's path and the mlx-lm version it belongs to (MlxEngine.converter()). */
  tool: { path: string; version: string | null };
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: PullProgress) => void) | undefined;
  pidfiles?: PidfileRegistry | undefined;
}

/** Conversions running in this agent, by store, owner, source sha256, bits and tool version. */
const inFlight = new Map<string, Promise<HfModelDir>>();

/**
 * The stored GGUF `from` as an MLX model directory: made once per source, bits and mlx-lm version (for
 * the owner), reused after. A failure names the model, the step and the reason, and keeps nothing.
 */
export async function ggufToMlx(store: ModelStore, req: GgufToMlxRequest): Promise<HfModelDir> {
  const origin = await store.get(req.from);
  const owner = req.owner ?? null;
  if (!origin || (origin.owner ?? null) !== owner || origin.format !== "gguf")
    throw new ModelError("model_not_found", `there is no GGUF model ${req.from} on this machine to convert`);
  const bits = mlxBitsFor(origin.quantization);
  const target = bits === null ? "mlx float16" : `mlx ${bits}-bit`;
  const fail = (step: string, reason: string) =>
    new ModelError(
      "conversion_failed",
      `converting ${req.from} from GGUF to ${target} failed at ${step}: ${reason}`,
    );
  const version = `mlx_lm.convert ${req.tool.version ?? "(version unknown)"}`;
  const converted_from: ConvertedFrom = {
    name: origin.name,
    sha256: origin.sha256,
    format: "gguf",
    quantization: origin.quantization,
    target,
    converter: { tool: "mlx_lm.convert", version, args: mlxWeightArgs(bits) },
  };
  const key = [store.dir, owner ?? "", origin.sha256, target, version].join("\0");
  return afterOthers(inFlight, key, () =>
    convert(store, req, {
      owner,
      bits,
      converted_from,
      fail,
      parameterCount: origin.parameter_count ?? null,
    }),
  );
}

async function convert(
  store: ModelStore,
  req: GgufToMlxRequest,
  at: {
    owner: string | null;
    bits: number | null;
    converted_from: ConvertedFrom;
    fail: (step: string, reason: string) => ModelError;
    /** The stored GGUF's (null when unknown: no disk check). */
    parameterCount: number | null;
  },
): Promise<HfModelDir> {
  const { owner, bits, converted_from, fail } = at;
  const progress = req.onProgress ?? (() => {});
  const root = mlxDir(store);
  const done = await findConverted(store, root, owner, converted_from);
  if (done) return done;

  // First the float16 repository mlx-lm reads. Made for this conversion only, it goes once the MLX
  // model is made (about 4× a Q4 GGUF on disk); one made before (for vLLM or SGLang) stays.
  const before = new Set((await listConvertedDirs(store)).map((d) => d.dir));
  const hf = await ggufToSafetensors(store, {
    from: req.from,
    owner: owner ?? undefined,
    signal: req.signal,
    onProgress: progress,
    pidfiles: req.pidfiles,
  });
  await mkdir(root, { recursive: true });
  // mlx_lm.convert refuses an output folder that exists: it makes this one.
  const tmp = join(root, `.tmp-${randomBytes(8).toString("hex")}`);
  try {
    if (at.parameterCount !== null)
      await ensureRoom(
        root,
        Math.ceil((at.parameterCount * (bits ?? 16)) / 8),
        `converting ${req.from} from GGUF to ${converted_from.target}`,
      );
    progress({ status: `converting to ${converted_from.target}` });
    const out = await runTool({
      name: "mlx_lm.convert",
      command: req.tool.path,
      args: mlxConvertArgs(hf.dir, tmp, bits),
      signal: req.signal,
      pidfiles: req.pidfiles,
    });
    if (!out.ok && out.stopped) throw fail("converting", "the conversion was stopped");
    if (!out.ok) throw fail("converting", out.said);
    if (!(await exists(join(tmp, "config.json"))))
      throw fail("converting", "mlx_lm.convert wrote no config.json");
    progress({ status: "hashing" });
    return await keepConverted(tmp, root, { owner, converted_from }, req.signal);
  } catch (err) {
    if (isModelError(err)) throw err;
    throw fail("storing the result", (err as Error).message);
  } finally {
    await rm(tmp, { recursive: true, force: true });
    if (!before.has(hf.dir)) await rm(hf.dir, { recursive: true, force: true });
  }
}
