import type { Hardware } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import { chooseEngine, EngineChoiceError } from "./choose.ts";
import type { EngineDetection, EngineName, ModelFormat } from "./engine.ts";
import { laptopCpuOnly, macStudio, oneH100, radeonBox } from "./testing/machines.ts";

const FORMATS: Record<EngineName, ModelFormat[]> = {
  builtin: ["gguf"],
  ollama: ["ollama", "gguf"],
  llamacpp: ["gguf"],
  vllm: ["safetensors"],
  sglang: ["safetensors"],
  mlx: ["mlx"],
};

function found(engine: EngineName, accelerators: EngineDetection["accelerators"]): EngineDetection {
  return { engine, installed: true, accelerators, formats: FORMATS[engine] };
}

function missing(engine: EngineName, reason: string): EngineDetection {
  return { engine, installed: false, accelerators: [], formats: FORMATS[engine], reason };
}

const builtinCpu = found("builtin", ["cpu"]);
const builtinMetal = found("builtin", ["cpu", "metal"]);
const vllmCuda = found("vllm", ["cuda"]);
const sglangCuda = found("sglang", ["cuda"]);
const llamacpp = found("llamacpp", ["cpu", "cuda"]);
const ollama = found("ollama", ["cpu", "cuda"]);
const mlx = found("mlx", ["metal"]);
const noVllm = missing("vllm", "vLLM is not installed (pip install vllm); it needs an NVIDIA GPU");
const noSglang = missing(
  "sglang",
  'SGLang is not installed for /usr/bin/python3 (pip install "sglang[all]")',
);
const noOllama = missing(
  "ollama",
  "Ollama is not installed (https://ollama.com/download) and none is running",
);

interface Case {
  name: string;
  format: ModelFormat;
  hardware: Hardware;
  detections: EngineDetection[];
  prefer?: EngineName;
  strict?: boolean;
  engine?: EngineName;
  error?: string | RegExp;
}

const cases: Case[] = [
  {
    name: "GGUF on a CPU laptop → builtin",
    format: "gguf",
    hardware: laptopCpuOnly,
    detections: [builtinCpu],
    engine: "builtin",
  },
  {
    name: "GGUF with no builtin detection reported → builtin (always available)",
    format: "gguf",
    hardware: laptopCpuOnly,
    detections: [],
    engine: "builtin",
  },
  {
    name: "GGUF on NVIDIA with llama.cpp installed but not preferred → builtin",
    format: "gguf",
    hardware: oneH100,
    detections: [builtinCpu, llamacpp, ollama],
    engine: "builtin",
  },
  {
    name: "GGUF, owner prefers llama.cpp → llamacpp",
    format: "gguf",
    hardware: oneH100,
    detections: [builtinCpu, llamacpp],
    prefer: "llamacpp",
    engine: "llamacpp",
  },
  {
    name: "GGUF, owner prefers Ollama → ollama",
    format: "gguf",
    hardware: oneH100,
    detections: [builtinCpu, ollama],
    prefer: "ollama",
    engine: "ollama",
  },
  {
    name: "GGUF, owner prefers Ollama which is missing → falls back to builtin",
    format: "gguf",
    hardware: laptopCpuOnly,
    detections: [builtinCpu, noOllama],
    prefer: "ollama",
    engine: "builtin",
  },
  {
    name: "GGUF, the caller insists on Ollama which is missing → error naming why",
    format: "gguf",
    hardware: laptopCpuOnly,
    detections: [builtinCpu, noOllama],
    prefer: "ollama",
    strict: true,
    error:
      "ollama cannot serve this gguf model here: Ollama is not installed (https://ollama.com/download) and none is running",
  },
  {
    name: "GGUF on a Mac → builtin (on Metal)",
    format: "gguf",
    hardware: macStudio,
    detections: [builtinMetal, mlx],
    engine: "builtin",
  },
  {
    name: "safetensors on NVIDIA with vLLM and SGLang → vllm",
    format: "safetensors",
    hardware: oneH100,
    detections: [builtinCpu, vllmCuda, sglangCuda],
    engine: "vllm",
  },
  {
    name: "safetensors on NVIDIA with only SGLang → sglang",
    format: "safetensors",
    hardware: oneH100,
    detections: [builtinCpu, noVllm, sglangCuda],
    engine: "sglang",
  },
  {
    name: "safetensors on NVIDIA, caller asks for SGLang → sglang",
    format: "safetensors",
    hardware: oneH100,
    detections: [vllmCuda, sglangCuda],
    prefer: "sglang",
    strict: true,
    engine: "sglang",
  },
  {
    name: "safetensors on AMD with a ROCm vLLM → vllm",
    format: "safetensors",
    hardware: radeonBox,
    detections: [found("vllm", ["rocm"])],
    engine: "vllm",
  },
  {
    name: "safetensors on a CPU-only machine → error with the way out",
    format: "safetensors",
    hardware: laptopCpuOnly,
    detections: [builtinCpu, noVllm, noSglang],
    error:
      "safetensors needs vLLM or SGLang with an NVIDIA GPU; this machine has none — use a GGUF build of the model with the builtin engine",
  },
  {
    name: "safetensors on a Mac → error that also points at MLX",
    format: "safetensors",
    hardware: macStudio,
    detections: [builtinMetal, mlx],
    error:
      /this machine has none — use a GGUF build of the model with the builtin engine; on this Mac, an MLX build/,
  },
  {
    name: "safetensors on NVIDIA with neither engine installed → error naming both",
    format: "safetensors",
    hardware: oneH100,
    detections: [builtinCpu, noVllm, noSglang],
    error: /neither can run here: vLLM is not installed \(pip install vllm\).*SGLang is not installed/,
  },
  {
    name: "safetensors, caller insists on the builtin engine → error: wrong format",
    format: "safetensors",
    hardware: oneH100,
    detections: [builtinCpu, vllmCuda],
    prefer: "builtin",
    strict: true,
    error:
      "builtin cannot serve this safetensors model here: builtin does not serve safetensors models (it serves gguf)",
  },
  {
    name: "MLX on a Mac with mlx_lm → mlx",
    format: "mlx",
    hardware: macStudio,
    detections: [builtinMetal, mlx],
    engine: "mlx",
  },
  {
    name: "MLX on Linux → error: Apple Silicon only",
    format: "mlx",
    hardware: oneH100,
    detections: [builtinCpu],
    error:
      "MLX models run only on Apple Silicon Macs with mlx_lm; this machine is linux/x64 with NVIDIA H100 80GB HBM3 — use a GGUF build of the model with the builtin engine",
  },
  {
    name: "MLX on a Mac without mlx_lm → error with the install command",
    format: "mlx",
    hardware: macStudio,
    detections: [builtinMetal, missing("mlx", "mlx_lm.server was not found; pip install mlx-lm")],
    error: "MLX models need mlx_lm: mlx_lm.server was not found; pip install mlx-lm",
  },
  {
    name: "ollama model with Ollama → ollama",
    format: "ollama",
    hardware: laptopCpuOnly,
    detections: [ollama],
    engine: "ollama",
  },
  {
    name: "ollama model without Ollama → error",
    format: "ollama",
    hardware: laptopCpuOnly,
    detections: [builtinCpu, noOllama],
    error: /^Ollama models need Ollama: Ollama is not installed \(https:\/\/ollama.com\/download\)/,
  },
  {
    name: "an installed engine with no usable accelerator is skipped",
    format: "safetensors",
    hardware: oneH100,
    detections: [found("vllm", []), sglangCuda],
    engine: "sglang",
  },
];

describe("chooseEngine", () => {
  it.each(cases)("$name", (c) => {
    const run = () =>
      chooseEngine({
        format: c.format,
        hardware: c.hardware,
        detections: c.detections,
        prefer: c.prefer,
        strict: c.strict,
      });
    if (c.engine !== undefined) {
      expect(run().engine).toBe(c.engine);
    } else {
      expect(run).toThrow(EngineChoiceError);
      expect(run).toThrow(c.error as string | RegExp);
    }
  });

  it("says why in the reason, including a preference it could not follow", () => {
    expect(chooseEngine({ format: "gguf", hardware: macStudio, detections: [builtinMetal] }).reason).toBe(
      "gguf → builtin on Metal",
    );
    expect(
      chooseEngine({
        format: "gguf",
        hardware: laptopCpuOnly,
        detections: [builtinCpu, noOllama],
        prefer: "ollama",
      }).reason,
    ).toBe(
      "gguf → builtin; preferred ollama cannot: Ollama is not installed (https://ollama.com/download) and none is running",
    );
  });

  it("errors carry a stable code", () => {
    try {
      chooseEngine({ format: "mlx", hardware: laptopCpuOnly, detections: [] });
    } catch (error) {
      expect((error as EngineChoiceError).code).toBe("no_engine");
      expect((error as EngineChoiceError).format).toBe("mlx");
    }
  });
});
