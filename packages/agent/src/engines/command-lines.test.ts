import { describe, expect, it } from "vitest";
import type { ModelSpec } from "./engine.ts";
import { engineEnv } from "./executables.ts";
import { tensorParallelSize } from "./hardware-facts.ts";
import { buildLlamaServerArgs } from "./llamacpp.ts";
import { buildMlxArgs } from "./mlx.ts";
import { buildOllamaServe } from "./ollama.ts";
import { buildSglangArgs, SGLANG_LAUNCHER } from "./sglang.ts";
import {
  eightH100,
  intelArcBox,
  laptopCpuOnly,
  macStudio,
  oneH100,
  radeonBox,
  threeH100,
} from "./testing/machines.ts";
import { buildVllmArgs } from "./vllm.ts";

const gguf: ModelSpec = {
  name: "smollm2-135m",
  format: "gguf",
  path: "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
};
const qwen: ModelSpec = { name: "qwen2.5-7b", format: "safetensors", path: "/models/Qwen2.5-7B-Instruct" };

describe("llama-server command line", () => {
  it("CPU only: loopback, alias, a thread per core, no GPU offload", () => {
    expect(
      buildLlamaServerArgs({ modelPath: gguf.path!, model: gguf, hardware: laptopCpuOnly, port: 41001 }),
    ).toEqual([
      "-m",
      "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
      "--host",
      "127.0.0.1",
      "--port",
      "41001",
      "--alias",
      "smollm2-135m",
      "-t",
      "2",
    ]);
  });

  it("with an NVIDIA GPU, a context size, parallel slots and embeddings", () => {
    const model = { ...gguf, contextSize: 8192 };
    expect(
      buildLlamaServerArgs({
        modelPath: gguf.path!,
        model,
        hardware: oneH100,
        port: 41002,
        parallel: 4,
        embeddings: true,
      }),
    ).toEqual([
      "-m",
      "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
      "--host",
      "127.0.0.1",
      "--port",
      "41002",
      "--alias",
      "smollm2-135m",
      "-t",
      "26",
      "-c",
      "8192",
      "-ngl",
      "999",
      "--parallel",
      "4",
      "--embeddings",
    ]);
  });

  it("offloads to any GPU: Apple Metal, AMD, Intel Arc", () => {
    for (const hardware of [macStudio, radeonBox, intelArcBox]) {
      const args = buildLlamaServerArgs({ modelPath: gguf.path!, model: gguf, hardware, port: 1 });
      expect(args.slice(-4)).toEqual(["-t", String(hardware.cpu_cores), "-ngl", "999"]);
    }
  });
});

describe("vllm serve command line", () => {
  it("one GPU: served under the model's name, tensor parallel 1", () => {
    expect(buildVllmArgs({ modelPath: qwen.path!, model: qwen, hardware: oneH100, port: 42001 })).toEqual([
      "serve",
      "/models/Qwen2.5-7B-Instruct",
      "--host",
      "127.0.0.1",
      "--port",
      "42001",
      "--served-model-name",
      "qwen2.5-7b",
      "--tensor-parallel-size",
      "1",
    ]);
  });

  it("eight GPUs, a context limit and a memory fraction", () => {
    expect(
      buildVllmArgs({
        modelPath: qwen.path!,
        model: { ...qwen, contextSize: 32768 },
        hardware: eightH100,
        port: 42002,
        gpuMemoryUtilization: 0.85,
      }),
    ).toEqual([
      "serve",
      "/models/Qwen2.5-7B-Instruct",
      "--host",
      "127.0.0.1",
      "--port",
      "42002",
      "--served-model-name",
      "qwen2.5-7b",
      "--max-model-len",
      "32768",
      "--gpu-memory-utilization",
      "0.85",
      "--tensor-parallel-size",
      "8",
    ]);
  });

  it("three GPUs: tensor parallel 2 (it must divide the attention heads)", () => {
    expect(
      buildVllmArgs({ modelPath: qwen.path!, model: qwen, hardware: threeH100, port: 1 }).slice(-2),
    ).toEqual(["--tensor-parallel-size", "2"]);
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16].map(tensorParallelSize)).toEqual([
      1, 1, 2, 2, 4, 4, 4, 4, 8, 8, 16,
    ]);
  });
});

describe("sglang launch_server command line", () => {
  it("runs sglang.launch_server through a launcher that adds the key from the environment", () => {
    expect(SGLANG_LAUNCHER).toContain('os.environ.pop("BETA9_ENGINE_API_KEY", None)');
    expect(SGLANG_LAUNCHER).toContain('runpy.run_module("sglang.launch_server", run_name="__main__"');
  });

  it("one GPU", () => {
    expect(buildSglangArgs({ modelPath: qwen.path!, model: qwen, hardware: oneH100, port: 43001 })).toEqual([
      "-c",
      SGLANG_LAUNCHER,
      "--model-path",
      "/models/Qwen2.5-7B-Instruct",
      "--host",
      "127.0.0.1",
      "--port",
      "43001",
      "--served-model-name",
      "qwen2.5-7b",
      "--tp",
      "1",
    ]);
  });

  it("eight GPUs and a context length", () => {
    expect(
      buildSglangArgs({
        modelPath: qwen.path!,
        model: { ...qwen, contextSize: 131072 },
        hardware: eightH100,
        port: 43002,
      }),
    ).toEqual([
      "-c",
      SGLANG_LAUNCHER,
      "--model-path",
      "/models/Qwen2.5-7B-Instruct",
      "--host",
      "127.0.0.1",
      "--port",
      "43002",
      "--served-model-name",
      "qwen2.5-7b",
      "--context-length",
      "131072",
      "--tp",
      "8",
    ]);
  });
});

describe("mlx_lm.server and ollama serve", () => {
  it("mlx_lm.server on loopback", () => {
    expect(buildMlxArgs({ modelPath: "/models/Qwen3-4B-MLX-4bit", port: 44001 })).toEqual([
      "--model",
      "/models/Qwen3-4B-MLX-4bit",
      "--host",
      "127.0.0.1",
      "--port",
      "44001",
    ]);
  });

  it("ollama serve binds 127.0.0.1 through OLLAMA_HOST, never 0.0.0.0", () => {
    expect(buildOllamaServe({ port: 45001, keepAlive: "-1" })).toEqual({
      args: ["serve"],
      env: { OLLAMA_HOST: "127.0.0.1:45001", OLLAMA_KEEP_ALIVE: "-1" },
    });
    expect(buildOllamaServe({ port: 45002, keepAlive: "10m", modelsDir: "/srv/ollama" }).env).toEqual({
      OLLAMA_HOST: "127.0.0.1:45002",
      OLLAMA_KEEP_ALIVE: "10m",
      OLLAMA_MODELS: "/srv/ollama",
    });
  });

  it("engines get the agent's environment without the agent's own settings", () => {
    const env = engineEnv(
      { OLLAMA_HOST: "127.0.0.1:1", REMOVED: undefined },
      { PATH: "/usr/bin", B9AGENT_CONFIG: "/secret.yaml", BETA9_TOKEN: "t", REMOVED: "x", HF_HOME: "/hf" },
    );
    expect(env).toEqual({ PATH: "/usr/bin", HF_HOME: "/hf", OLLAMA_HOST: "127.0.0.1:1" });
  });
});
