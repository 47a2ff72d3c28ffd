import type { InferenceStatus, StoredModelView } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { machineView } from "../placement/testing/machine-view.ts";
import { placeReplica } from "./placement.ts";
import { type DeploymentSpec, servedAs } from "./replicas.ts";
import { servedWeights } from "./served-weights.ts";

const GB = 1e9;

/** A machine without a GPU whose free RAM takes the weights. */
const free = (id: string, bytes: number) =>
  machineView({
    id,
    inference: { engines: [], models: [], memory_free_bytes: bytes, vram_free_bytes: null },
  });

const needs = {
  model: "llama",
  pool: "external",
  gpu: "any" as const,
  minVramBytes: null,
  countries: [],
  region: null,
};

/** What a machine answers after converting a 7B safetensors repository to GGUF F16: 14 GB. */
const converted: StoredModelView = {
  name: "llama",
  sha256: "a".repeat(64),
  size: 14 * GB,
  source: "hf:acme/llama-7b",
  format: "gguf",
  license: null,
  architecture: "llama",
  parameter_count: 7e9,
  quantization: "F16",
  context_length: 4096,
  converted_from: {
    name: "hf:acme/llama-7b",
    sha256: "b".repeat(64),
    format: "safetensors",
    quantization: null,
    target: "F16",
    converter: { tool: "convert_hf_to_gguf.py", version: "llama.cpp v0.4.0" },
  },
};

describe("placing a deployment by the weights its machines serve after converting", () => {
  const laptop = free("laptop", 8 * GB);
  const server = free("server", 32 * GB);

  it("a safetensors repository converted to F16: only a machine with room for the GGUF is chosen", () => {
    const weights = servedWeights({ name: "llama", quantize: null }, converted);
    expect(weights).toEqual({ bytes: 14 * GB, what: "llama as converted (GGUF F16)" });
    expect(placeReplica({ ...needs, weights }, [laptop, server])).toMatchObject({
      ok: true,
      machines: [{ id: "server" }],
    });
    expect(placeReplica({ ...needs, weights }, [laptop])).toEqual({
      ok: false,
      reason:
        "no machine in pool external has 14.0 GB free for llama as converted (GGUF F16); most free is 8.0 GB on laptop",
    });
  });

  it("the same repository with --quantize Q4_K_M: its size at that type, so the laptop fits", () => {
    const weights = servedWeights({ name: "llama", quantize: "Q4_K_M" }, converted);
    expect(weights?.bytes).toBeLessThan(8 * GB);
    expect(placeReplica({ ...needs, weights }, [laptop, server])).toMatchObject({
      ok: true,
      // Both fit: the one with more room first.
      machines: [{ id: "server" }, { id: "laptop" }],
    });
  });

  it("a GGUF served as fetched: nothing more than the agent's own check", () => {
    const { converted_from: _, ...fetched } = converted;
    expect(servedWeights({ name: "llama", quantize: null }, fetched)).toBeNull();
  });
});

describe("the placement explanation of a replica the machine converted for its engine", () => {
  const dep = { name: "smol", engine: "vllm" } as DeploymentSpec;
  const { converted_from: _, ...gguf } = { ...converted, name: "smol", quantization: "Q4_1", size: 0.1 * GB };
  const status = (served: InferenceStatus["models"][number]): InferenceStatus => ({
    status: "running",
    running: true,
    endpoint: null,
    models: [served],
    engines: [],
  });

  it("a GGUF on vLLM: the stored format, the engine, the format it loads and why", () => {
    const text = servedAs(
      dep,
      gguf,
      status({
        name: "smol",
        engine: "vllm",
        state: "ready",
        memory_bytes: 0.27 * GB,
        context_size: null,
        converted_to: "safetensors",
      }),
    );
    expect(text).toBe(
      "serves GGUF Q4_1 on vllm as safetensors (the deployment names it; no engine there serves gguf, so the machine dequantised it to float16 once and keeps it)",
    );
  });

  it("a GGUF on MLX: made an MLX model of about its bits", () => {
    const text = servedAs(
      { ...dep, engine: "mlx" },
      gguf,
      status({
        name: "smol",
        engine: "mlx",
        state: "ready",
        memory_bytes: 0.08 * GB,
        context_size: null,
        converted_to: "mlx",
      }),
    );
    expect(text).toBe(
      "serves GGUF Q4_1 on mlx as mlx (the deployment names it; no engine there serves gguf, so the machine dequantised it to float16 and had mlx_lm.convert quantise that to about its bits, once, and keeps it)",
    );
  });

  it("the same GGUF on the builtin engine: served as stored", () => {
    const text = servedAs(
      { ...dep, engine: null },
      gguf,
      status({ name: "smol", engine: "builtin", state: "ready", memory_bytes: null, context_size: null }),
    );
    expect(text).toBe("serves GGUF Q4_1 on builtin (the machine's choice for that format)");
  });
});
