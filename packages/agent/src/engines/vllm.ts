import type { Hardware } from "@beta9/protocol";
import type { EngineDetection, ModelFormat, ServedModel, StartOptions } from "./engine.ts";
import { capture, scriptPackageVersion } from "./executables.ts";
import { servingGpuCount, tensorParallelSize } from "./hardware-facts.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  OneProcessPerModelEngine,
  type ServerArgsInput,
} from "./process-engine.ts";
import { isLoadingProgress } from "./progress.ts";

/*
 * vLLM (`vllm serve`) for safetensors models on NVIDIA GPUs (and AMD with a ROCm build). Its HTTP
 * server listens only once the weights are loaded: until then the probe sees "down", and its
 * loading log lines stretch the deadline.
 */

const FORMATS: ModelFormat[] = ["safetensors"];
/** vLLM's --api-key, read from its environment (it guards the /v1 routes). */
export const VLLM_KEY_ENV = "VLLM_API_KEY";

export interface VllmOptions extends ExternalEngineOptions {
  /** Fraction of GPU memory vLLM may take (--gpu-memory-utilization); vLLM's default (0.9) when absent. */
  gpuMemoryUtilization?: number | undefined;
}

export interface VllmArgsInput extends ServerArgsInput {
  gpuMemoryUtilization?: number | undefined;
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
    super(options, "vllm", FORMATS);
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const path = await this.findProgram();
    if (path === null)
      return this.notInstalled("vLLM is not installed (pip install vllm); it needs an NVIDIA GPU");
    const env = this.env();
    // Reading the package metadata with the script's own Python is instant; `vllm --version` imports torch.
    let version = await scriptPackageVersion(path, "vllm", env);
    if (version === null) {
      const result = await capture(path, ["--version"], { env, timeoutMs: 60_000 });
      version = result?.stdout.trim().split("\n").pop()?.trim() || null;
    }
    return this.detectedOnServingGpu(hardware, version, "vLLM");
  }

  start(options: StartOptions): Promise<ServedModel> {
    return this.launch(options, {
      missing: "vLLM is not installed here (pip install vllm)",
      isProgress: isLoadingProgress,
      keyEnv: VLLM_KEY_ENV,
      env: { VLLM_NO_USAGE_STATS: "1", DO_NOT_TRACK: "1" },
      args: (input) => buildVllmArgs({ ...input, gpuMemoryUtilization: this.options.gpuMemoryUtilization }),
    });
  }
}
