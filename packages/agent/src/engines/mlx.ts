import type { Hardware } from "@beta9/protocol";
import type { EngineDetection, ModelFormat, ServedModel, StartOptions } from "./engine.ts";
import { EngineStartError } from "./engine.ts";
import { findExecutable, pythonOfScript, pythonPackageVersion } from "./executables.ts";
import { isAppleSilicon } from "./hardware-facts.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  envFor,
  notInstalled,
  OneProcessPerModelEngine,
  pathOf,
  weightsPath,
} from "./process-engine.ts";

/*
 * Apple's MLX (`mlx_lm.server`) for MLX-format models on Apple Silicon. It loads the model given
 * by --model before it listens, and serves it under the name "default_model".
 */

const FORMATS: ModelFormat[] = ["mlx"];

/** The name mlx_lm.server maps to the model it was started with (its request default). */
export const MLX_DEFAULT_MODEL = "default_model";

export type MlxOptions = ExternalEngineOptions;

export function buildMlxArgs(input: { modelPath: string; port: number }): string[] {
  return ["--model", input.modelPath, "--host", LOOPBACK, "--port", String(input.port)];
}

export class MlxEngine extends OneProcessPerModelEngine<MlxOptions> {
  readonly name = "mlx" as const;

  constructor(options: MlxOptions = {}) {
    super(options, "mlx_lm.server");
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const path = await findExecutable(this.program(), pathOf(this.options));
    const version =
      path === null
        ? null
        : await pythonOfScript(path).then((python) =>
            python === null ? null : pythonPackageVersion(python, "mlx-lm", envFor(this.options)),
          );
    if (!isAppleSilicon(hardware)) {
      return notInstalled(
        this.name,
        FORMATS,
        `MLX runs only on Apple Silicon Macs; this machine is ${hardware.os}/${hardware.arch}`,
        version ?? undefined,
      );
    }
    if (path === null)
      return notInstalled(this.name, FORMATS, "mlx_lm.server was not found; pip install mlx-lm");
    return {
      engine: this.name,
      installed: true,
      version: version ?? undefined,
      accelerators: ["metal"],
      formats: FORMATS,
    };
  }

  async start(options: StartOptions): Promise<ServedModel> {
    if (!isAppleSilicon(options.hardware)) {
      throw new EngineStartError(this.name, "MLX runs only on Apple Silicon Macs");
    }
    const modelPath = weightsPath(this.name, options.model, FORMATS);
    return this.launch(options, {
      missing: "mlx_lm.server is not installed here (pip install mlx-lm)",
      servedName: MLX_DEFAULT_MODEL,
      confirmName: false,
      args: (port) => buildMlxArgs({ modelPath, port }),
    });
  }
}
