import type { Hardware } from "@beta9/protocol";
import type { Engine, EngineDetection, EngineName } from "./engine.ts";
import { LlamaCppEngine, type LlamaCppOptions } from "./llamacpp.ts";
import { MlxEngine, type MlxOptions } from "./mlx.ts";
import { OllamaEngine, type OllamaOptions } from "./ollama.ts";
import type { ExternalEngineOptions } from "./process-engine.ts";
import { SglangEngine, type SglangOptions } from "./sglang.ts";
import { VllmEngine, type VllmOptions } from "./vllm.ts";

/** Per-engine settings from the owner's config; `common` applies to all of them (pidfiles, PATH). */
export interface ExternalEnginesConfig {
  common?: ExternalEngineOptions;
  ollama?: OllamaOptions;
  llamacpp?: LlamaCppOptions;
  vllm?: VllmOptions;
  sglang?: SglangOptions;
  mlx?: MlxOptions;
}

/** The external engines, one instance each. */
export function externalEngines(config: ExternalEnginesConfig = {}): Engine[] {
  const common = config.common ?? {};
  return [
    new OllamaEngine({ ...common, ...config.ollama }),
    new LlamaCppEngine({ ...common, ...config.llamacpp }),
    new VllmEngine({ ...common, ...config.vllm }),
    new SglangEngine({ ...common, ...config.sglang }),
    new MlxEngine({ ...common, ...config.mlx }),
  ];
}

/** Engine name → engine. The builtin engine comes from the integrator; the others default to externalEngines(). */
export class EngineRegistry {
  readonly #engines = new Map<EngineName, Engine>();

  constructor(builtin: Engine, others: readonly Engine[] = externalEngines()) {
    for (const engine of [builtin, ...others]) this.#engines.set(engine.name, engine);
  }

  get(name: EngineName): Engine | undefined {
    return this.#engines.get(name);
  }

  list(): Engine[] {
    return [...this.#engines.values()];
  }

  /** Detects every engine at once; one whose detection throws is reported as not installed, with why. */
  detectAll(hardware: Hardware): Promise<EngineDetection[]> {
    return Promise.all(
      this.list().map(async (engine): Promise<EngineDetection> => {
        try {
          return await engine.detect(hardware);
        } catch (error) {
          return {
            engine: engine.name,
            installed: false,
            accelerators: [],
            formats: [],
            reason: `detecting ${engine.name} failed: ${(error as Error).message}`,
          };
        }
      }),
    );
  }

  /** Stops everything every engine runs; one engine failing to stop does not keep the others running. */
  async shutdownAll(): Promise<void> {
    await Promise.allSettled(this.list().map((engine) => engine.shutdown()));
  }
}
