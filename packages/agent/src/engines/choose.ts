import type { Hardware } from "@beta9/protocol";
import type { EngineDetection, EngineName, ModelFormat } from "./engine.ts";
import { describeMachine, gpusOf, isAppleSilicon } from "./hardware-facts.ts";

/*
 * Which engine serves a model here: a pure function of the model's format, the machine, what
 * engine detection found and an optional preference. Every "no" is a sentence that says what is
 * missing and what to do instead.
 */

export interface EngineChoiceInput {
  format: ModelFormat;
  hardware: Hardware;
  detections: readonly EngineDetection[];
  /** The owner's configured engine or the caller's `engine` field. */
  prefer?: EngineName | undefined;
  /**
   * True when the caller asked for `prefer` explicitly: then it is that engine or an error. False
   * (the owner's default): a preference that cannot serve this model falls back to the usual choice.
   */
  strict?: boolean | undefined;
}

export interface EngineChoice {
  engine: EngineName;
  /** Why, for the log and the TUI: "gguf → builtin (default)". */
  reason: string;
}

/** No engine here can serve the model; `message` says what is missing. */
export class EngineChoiceError extends Error {
  readonly code = "no_engine";
  readonly format: ModelFormat;
  constructor(format: ModelFormat, message: string) {
    super(message);
    this.name = "EngineChoiceError";
    this.format = format;
  }
}

const INSTALL_HINT: Record<EngineName, string> = {
  builtin: "the builtin engine ships with the agent",
  ollama: "install Ollama from https://ollama.com/download",
  llamacpp: "install llama.cpp's llama-server",
  vllm: "pip install vllm",
  sglang: 'pip install "sglang[all]"',
  mlx: "pip install mlx-lm",
};

function find(detections: readonly EngineDetection[], engine: EngineName): EngineDetection | undefined {
  return detections.find((d) => d.engine === engine);
}

/** The builtin engine needs no install: usable unless its detection explicitly says otherwise. */
function usable(detections: readonly EngineDetection[], engine: EngineName, format: ModelFormat): boolean {
  const d = find(detections, engine);
  if (d === undefined) return engine === "builtin" && format === "gguf";
  return d.installed && d.formats.includes(format) && d.accelerators.length > 0;
}

/** Why an engine cannot serve this format here, in a sentence. */
function whyNot(detections: readonly EngineDetection[], engine: EngineName, format: ModelFormat): string {
  const d = find(detections, engine);
  if (d === undefined) return `${engine} was not detected on this machine (${INSTALL_HINT[engine]})`;
  if (!d.installed) return d.reason ?? `${engine} is not installed (${INSTALL_HINT[engine]})`;
  if (!d.formats.includes(format))
    return `${engine} does not serve ${format} models (it serves ${d.formats.join(", ")})`;
  return d.reason ?? `${engine} has no accelerator it can use on this machine`;
}

/** The engines that can serve a format, best first. */
function candidates(format: ModelFormat): EngineName[] {
  switch (format) {
    case "gguf":
      return ["builtin", "llamacpp", "ollama"];
    case "safetensors":
      return ["vllm", "sglang"];
    case "mlx":
      return ["mlx"];
    case "ollama":
      return ["ollama"];
  }
}

function noEngineMessage(input: EngineChoiceInput): string {
  const { format, hardware, detections } = input;
  switch (format) {
    case "safetensors": {
      const gpus = gpusOf(hardware, "nvidia").length + gpusOf(hardware, "amd").length;
      if (gpus === 0) {
        const apple = isAppleSilicon(hardware)
          ? "; on this Mac, an MLX build of the model can run with mlx_lm"
          : "";
        return `safetensors needs vLLM or SGLang with an NVIDIA GPU; this machine has none — use a GGUF build of the model with the builtin engine${apple}`;
      }
      return `safetensors needs vLLM or SGLang, and neither can run here: ${whyNot(detections, "vllm", format)}; ${whyNot(detections, "sglang", format)} — or use a GGUF build of the model with the builtin engine`;
    }
    case "mlx":
      if (!isAppleSilicon(hardware)) {
        return `MLX models run only on Apple Silicon Macs with mlx_lm; this machine is ${describeMachine(hardware)} — use a GGUF build of the model with the builtin engine`;
      }
      return `MLX models need mlx_lm: ${whyNot(detections, "mlx", format)}`;
    case "ollama":
      return `Ollama models need Ollama: ${whyNot(detections, "ollama", format)} — or use the model's GGUF file with the builtin engine`;
    case "gguf":
      return `no engine can serve GGUF here: ${whyNot(detections, "builtin", format)}`;
  }
}

export function chooseEngine(input: EngineChoiceInput): EngineChoice {
  const { format, hardware, detections, prefer } = input;
  if (prefer !== undefined) {
    if (usable(detections, prefer, format))
      return { engine: prefer, reason: `${format} → ${prefer} (preferred)` };
    if (input.strict === true) {
      throw new EngineChoiceError(
        format,
        `${prefer} cannot serve this ${format} model here: ${whyNot(detections, prefer, format)}`,
      );
    }
  }
  for (const engine of candidates(format)) {
    if (!usable(detections, engine, format)) continue;
    const on = engine === "builtin" && isAppleSilicon(hardware) ? " on Metal" : "";
    const fallback =
      prefer !== undefined ? `; preferred ${prefer} cannot: ${whyNot(detections, prefer, format)}` : "";
    return { engine, reason: `${format} → ${engine}${on}${fallback}` };
  }
  throw new EngineChoiceError(format, noEngineMessage(input));
}
