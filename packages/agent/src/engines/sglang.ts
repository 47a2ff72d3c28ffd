import type { Hardware } from "@beta9/protocol";
import type { EngineDetection, ModelFormat, ServedModel, StartOptions } from "./engine.ts";
import { ENGINE_KEY_ENV } from "./engine-key.ts";
import { pythonPackageVersion } from "./executables.ts";
import { servingGpuCount, tensorParallelSize } from "./hardware-facts.ts";
import { httpRequest, parseJson } from "./http.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  OneProcessPerModelEngine,
  type ServerArgsInput,
} from "./process-engine.ts";
import { isLoadingProgress } from "./progress.ts";

/*
 * SGLang (`python3 -m sglang.launch_server`) for safetensors models on NVIDIA GPUs. Its /health
 * answers 503 while the server is still starting and 200 once it has generated a test token.
 */

const FORMATS: ModelFormat[] = ["safetensors"];

/** `binary` is the Python that has sglang installed (default python3). */
export type SglangOptions = ExternalEngineOptions;

export type SglangArgsInput = ServerArgsInput;

/**
 * SGLang takes its key only as --api-key, which /proc would show every local user: this launcher
 * moves it from the environment into sys.argv inside the interpreter, then runs sglang.launch_server.
 */
export const SGLANG_LAUNCHER = `import os, runpy, sys
key = os.environ.pop("${ENGINE_KEY_ENV}", None)
if key:
    sys.argv += ["--api-key", key]
runpy.run_module("sglang.launch_server", run_name="__main__", alter_sys=True)`;

/** The command line after the Python interpreter. */
export function buildSglangArgs(input: SglangArgsInput): string[] {
  const args = [
    "-c",
    SGLANG_LAUNCHER,
    "--model-path",
    input.modelPath,
    "--host",
    LOOPBACK,
    "--port",
    String(input.port),
    "--served-model-name",
    input.model.name,
  ];
  if (input.model.contextSize !== undefined) args.push("--context-length", String(input.model.contextSize));
  args.push("--tp", String(tensorParallelSize(servingGpuCount(input.hardware))));
  return args;
}

/** What SGLang's /get_model_info says it loaded. */
export interface SglangModelInfo {
  modelPath: string;
  isGeneration: boolean;
}

export function parseSglangModelInfo(body: unknown): SglangModelInfo | null {
  if (typeof body !== "object" || body === null) return null;
  const { model_path, is_generation } = body as { model_path?: unknown; is_generation?: unknown };
  if (typeof model_path !== "string") return null;
  return { modelPath: model_path, isGeneration: is_generation !== false };
}

export class SglangEngine extends OneProcessPerModelEngine<SglangOptions> {
  readonly name = "sglang" as const;

  constructor(options: SglangOptions = {}) {
    super(options, "python3", FORMATS);
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const python = await this.findProgram();
    if (python === null) return this.notInstalled("SGLang needs python3, which was not found");
    const version = await pythonPackageVersion(python, "sglang", this.env());
    if (version === null) {
      return this.notInstalled(`SGLang is not installed for ${python} (pip install "sglang[all]")`);
    }
    return this.detectedOnServingGpu(hardware, version, "SGLang");
  }

  async start(options: StartOptions): Promise<ServedModel> {
    const served = await this.launch(options, {
      missing: "SGLang needs python3, which is not installed here",
      isProgress: isLoadingProgress,
      // /health makes the model generate one token and may take a while under load.
      probeTimeoutMs: 30_000,
      keyEnv: ENGINE_KEY_ENV,
      args: buildSglangArgs,
    });
    const answer = await httpRequest(`${served.endpoint}/get_model_info`, {
      headers: served.authHeaders(),
      signal: options.signal,
    });
    const info = answer?.status === 200 ? parseSglangModelInfo(parseJson(answer.text)) : null;
    if (info !== null && !info.isGeneration) {
      options.onLog?.(`sglang: ${info.modelPath} is an embedding model; chat and completions will fail`);
    }
    return served;
  }
}
