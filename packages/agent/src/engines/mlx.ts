import { delimiter, dirname } from "node:path";
import type { Hardware } from "@beta9/protocol";
import { findExecutable } from "../process/find-executable.ts";
import type { EngineDetection, ModelFormat, ServedModel, StartOptions } from "./engine.ts";
import { EngineStartError } from "./engine.ts";
import { scriptPackageVersion } from "./executables.ts";
import { isAppleSilicon } from "./hardware-facts.ts";
import { LOOPBACK } from "./ports.ts";
import {
  type ExternalEngineOptions,
  OneProcessPerModelEngine,
  pathOf,
  type ServerArgsInput,
} from "./process-engine.ts";

/*
 * Apple's MLX (`mlx_lm.server`) for MLX-format models on Apple Silicon. It loads the model given
 * by --model before it listens, and serves it under the name "default_model". It has no
 * authentication of any kind: it listens on 127.0.0.1 only, where local users can still reach it.
 */

const FORMATS: ModelFormat[] = ["mlx"];

/** The name mlx_lm.server maps to the model it was started with (its request default). */
export const MLX_DEFAULT_MODEL = "default_model";

export type MlxOptions = ExternalEngineOptions;

export function buildMlxArgs(input: Pick<ServerArgsInput, "modelPath" | "port">): string[] {
  return ["--model", input.modelPath, "--host", LOOPBACK, "--port", String(input.port)];
}

export class MlxEngine extends OneProcessPerModelEngine<MlxOptions> {
  readonly name = "mlx" as const;

  constructor(options: MlxOptions = {}) {
    super(options, "mlx_lm.server", FORMATS);
  }

  async detect(hardware: Hardware): Promise<EngineDetection> {
    const path = await this.findProgram();
    const version = path === null ? null : await scriptPackageVersion(path, "mlx-lm", this.env());
    if (!isAppleSilicon(hardware)) {
      return this.notInstalled(
        `MLX runs only on Apple Silicon Macs; this machine is ${hardware.os}/${hardware.arch}`,
        version,
      );
    }
    if (path === null) return this.notInstalled("mlx_lm.server was not found; pip install mlx-lm");
    return this.detected(version, ["metal"]);
  }

  /**
   * mlx-lm's converter (`mlx_lm.convert`, installed beside mlx_lm.server) and its version: what makes
   * an MLX model of a stored GGUF (models/convert/to-mlx.ts). Null when it is not there.
   */
  async converter(): Promise<{ path: string; version: string | null } | null> {
    const server = await this.findProgram();
    if (server === null) return null;
    const path = await findExecutable(
      "mlx_lm.convert",
      `${dirname(server)}${delimiter}${pathOf(this.options) ?? ""}`,
    );
    return path === null ? null : { path, version: await scriptPackageVersion(path, "mlx-lm", this.env()) };
  }

  async start(options: StartOptions): Promise<ServedModel> {
    if (!isAppleSilicon(options.hardware)) {
      throw new EngineStartError(this.name, "MLX runs only on Apple Silicon Macs");
    }
    return this.launch(options, {
      missing: "mlx_lm.server is not installed here (pip install mlx-lm)",
      servedName: MLX_DEFAULT_MODEL,
      confirmName: false,
      args: buildMlxArgs,
    });
  }
}
