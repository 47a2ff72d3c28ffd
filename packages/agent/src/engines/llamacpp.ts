import type { Hardware } from "@beta9/protocol";
import type { EngineDetection, ModelFormat, ServedModel, StartOptions } from "./engine.ts";
import { capture } from "./executables.ts";
import { machineAccelerators, threadCount } from "./hardware-facts.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  OneProcessPerModelEngine,
  type ServerArgsInput,
} from "./process-engine.ts";

/*
 * llama.cpp's own OpenAI-compatible server, `llama-server`, for owners who prefer it to the builtin
 * engine (same library, their own build and flags). One process per model.
 */

const FORMATS: ModelFormat[] = ["gguf"];
export const LLAMA_KEY_ENV = "LLAMA_API_KEY";

export interface LlamaCppOptions extends ExternalEngineOptions {
  /** Requests decoded at once (--parallel); llama-server's default when absent. */
  parallel?: number | undefined;
  /** Serve /v1/embeddings too (--embeddings). */
  embeddings?: boolean | undefined;
}

export interface LlamaServerArgsInput extends ServerArgsInput {
  parallel?: number | undefined;
  embeddings?: boolean | undefined;
}

/** The llama-server command line (after the program name). */
export function buildLlamaServerArgs(input: LlamaServerArgsInput): string[] {
  const args = [
    "-m",
    input.modelPath,
    "--host",
    LOOPBACK,
    "--port",
    String(input.port),
    "--alias",
    input.model.name,
    "-t",
    String(threadCount(input.hardware)),
  ];
  if (input.model.contextSize !== undefined) args.push("-c", String(input.model.contextSize));
  // Offload every layer when there is a GPU; llama.cpp keeps on the CPU what its build cannot place.
  if (input.hardware.gpus.length > 0) args.push("-ngl", "999");
  if (input.parallel !== undefined) args.push("--parallel", String(input.parallel));
  if (input.embeddings === true) args.push("--embeddings");
  return args;
}

/**
 * `llama-server --version` prints to stderr, e.g. "version: 4240 (b5e0d4f8)" (older builds) or
 * "version: 0.4.1-dev (build 10991, commit 930e2fa59)".
 */
export function parseLlamaServerVersion(output: string): string | undefined {
  return /^version:\s*(.+?)\s*$/m.exec(output)?.[1];
}

export class LlamaCppEngine extends OneProcessPerModelEngine<LlamaCppOptions> {
  readonly name = "llamacpp" as const;

  constructor(options: LlamaCppOptions = {}) {
    super(options, "llama-server", FORMATS);
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const path = await this.findProgram();
    if (path === null) {
      return this.notInstalled(
        "llama-server was not found on PATH; install llama.cpp (brew install llama.cpp, or a release from github.com/ggml-org/llama.cpp) or set its path in the agent's config",
      );
    }
    const result = await capture(path, ["--version"], { env: this.env() });
    const version =
      result === null ? undefined : parseLlamaServerVersion(`${result.stdout}\n${result.stderr}`);
    return this.detected(version, machineAccelerators(hardware));
  }

  start(options: StartOptions): Promise<ServedModel> {
    return this.launch(options, {
      missing: "llama-server is not installed here; install llama.cpp or use the builtin engine",
      // llama-server reads --api-key from LLAMA_API_KEY: the key stays off its command line.
      keyEnv: LLAMA_KEY_ENV,
      args: (input) =>
        buildLlamaServerArgs({
          ...input,
          parallel: this.options.parallel,
          embeddings: this.options.embeddings,
        }),
    });
  }
}
