import type { Hardware } from "@beta9/protocol";
import type { EngineDetection, ModelFormat, ModelSpec, ServedModel, StartOptions } from "./engine.ts";
import { capture, findExecutable, pythonOfScript, pythonPackageVersion } from "./executables.ts";
import { gpusOf, tensorParallelSize } from "./hardware-facts.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  envFor,
  notInstalled,
  OneProcessPerModelEngine,
  pathOf,
  weightsPath,
} from "./process-engine.ts";
import { isLoadingProgress } from "./progress.ts";

/*
 * vLLM (`vllm serve`) for safetensors models on NVIDIA GPUs (and AMD with a ROCm build). Its HTTP
 * server listens only once the weights are loaded: until then the probe sees "down", and its
 * loading log lines stretch the deadline.
 */

const FORMATS: ModelFormat[] = ["safetensors"];

export interface VllmOptions extends ExternalEngineOptions {
  /** Fraction of GPU memory vLLM may take (--gpu-memory-utilization); vLLM's default (0.9) when absent. */
  gpuMemoryUtilization?: number | undefined;
}

export interface VllmArgsInput {
  modelPath: string;
  model: ModelSpec;
  hardware: Hardware;
  port: number;
  gpuMemoryUtilization?: number | undefined;
}

/** The GPUs an engine for safetensors runs on: NVIDIA's, else AMD's. */
export function servingGpuCount(hardware: Hardware): number {
  const nvidia = gpusOf(hardware, "nvidia").length;
  return nvidia > 0 ? nvidia : gpusOf(hardware, "amd").length;
}

/** The `vllm` command line (after the program name). */
export function buildVllmArgs(input: VllmArgsInput): string[] {
  const args = [
    "serve",
    input.modelPath,
    "--host",
    LOOPBACK,
    "--port",
    String(input.port),
    "--served-model-name",
    input.model.name,
  ];
  if (input.model.contextSize !== undefined) args.push("--max-model-len", String(input.model.contextSize));
  if (input.gpuMemoryUtilization !== undefined) {
    args.push("--gpu-memory-utilization", String(input.gpuMemoryUtilization));
  }
  args.push("--tensor-parallel-size", String(tensorParallelSize(servingGpuCount(input.hardware))));
  return args;
}

export class VllmEngine extends OneProcessPerModelEngine<VllmOptions> {
  readonly name = "vllm" as const;

  constructor(options: VllmOptions = {}) {
    super(options, "vllm");
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const path = await findExecutable(this.program(), pathOf(this.options));
    if (path === null) {
      return notInstalled(
        this.name,
        FORMATS,
        "vLLM is not installed (pip install vllm); it needs an NVIDIA GPU",
      );
    }
    const env = envFor(this.options);
    // Reading the package metadata with the script's own Python is instant; `vllm --version` imports torch.
    const python = await pythonOfScript(path);
    let version = python === null ? null : await pythonPackageVersion(python, "vllm", env);
    if (version === null) {
      const result = await capture(path, ["--version"], { env, timeoutMs: 60_000 });
      version = result?.stdout.trim().split("\n").pop()?.trim() || null;
    }
    const nvidia = gpusOf(hardware, "nvidia").length > 0;
    const amd = gpusOf(hardware, "amd").length > 0;
    if (!nvidia && !amd) {
      return notInstalled(
        this.name,
        FORMATS,
        "vLLM is installed but this machine has no NVIDIA (or AMD) GPU for it",
        version ?? undefined,
      );
    }
    return {
      engine: this.name,
      installed: true,
      version: version ?? undefined,
      accelerators: nvidia ? ["cuda"] : ["rocm"],
      formats: FORMATS,
    };
  }

  async start(options: StartOptions): Promise<ServedModel> {
    const modelPath = weightsPath(this.name, options.model, FORMATS);
    return this.launch(options, {
      missing: "vLLM is not installed here (pip install vllm)",
      servedName: options.model.name,
      isProgress: isLoadingProgress,
      env: { VLLM_NO_USAGE_STATS: "1", DO_NOT_TRACK: "1" },
      args: (port) =>
        buildVllmArgs({
          modelPath,
          model: options.model,
          hardware: options.hardware,
          port,
          gpuMemoryUtilization: this.options.gpuMemoryUtilization,
        }),
    });
  }
}
