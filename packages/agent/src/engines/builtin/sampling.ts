import type { LLamaContextualRepeatPenalty } from "node-llama-cpp";
import { EngineError } from "./errors.ts";
import type { LoadedModel } from "./loaded-model.ts";

/** The request fields that steer sampling, shared by chat and text completions. */
export interface SamplingRequest {
  max_tokens?: number | null | undefined;
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  top_k?: number | null | undefined;
  min_p?: number | null | undefined;
  seed?: number | null | undefined;
  stop?: string | string[] | null | undefined;
  frequency_penalty?: number | null | undefined;
  presence_penalty?: number | null | undefined;
  repeat_penalty?: number | null | undefined;
}

/** Options node-llama-cpp's LlamaChat and LlamaCompletion both take. */
export interface SamplingOptions {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  seed?: number;
  repeatPenalty: false | LLamaContextualRepeatPenalty;
  customStopTriggers?: string[];
}

/*
 * Defaults where the client sends nothing: llama.cpp server's (temperature 0.8, top_k 40, top_p 0.95,
 * min_p 0.05), which suit small local models better than OpenAI's temperature 1. Repetition penalties
 * are off unless asked for, as in OpenAI's API.
 */
const DEFAULTS = { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05 };
/** Tokens looked back at by the repetition penalties (llama.cpp's repeat_last_n). */
const PENALTY_WINDOW = 64;

/**
 * Sampling options for a prompt of `promptTokens` tokens. A prompt that leaves no room in the context,
 * or a max_tokens that would overflow it, is refused (400 context_length_exceeded) rather than silently
 * truncated; without max_tokens the answer may fill the rest of the context.
 */
export function samplingOptions(
  req: SamplingRequest,
  model: LoadedModel,
  promptTokens: number,
  maxTokensField = "max_tokens",
): SamplingOptions {
  const contextSize = model.spec.contextSize;
  const room = contextSize - promptTokens;
  if (room < 1) {
    throw new EngineError(
      400,
      "context_length_exceeded",
      `this model's context is ${contextSize} tokens and the prompt is ${promptTokens}; shorten the prompt or load the model with a larger context_size`,
      { param: "messages" },
    );
  }
  const maxTokens = req.max_tokens ?? room;
  if (maxTokens > room) {
    throw new EngineError(
      400,
      "context_length_exceeded",
      `this model's context is ${contextSize} tokens; you asked for ${promptTokens + maxTokens} (${promptTokens} in the prompt, ${maxTokens} in the completion); lower ${maxTokensField} to at most ${room} or shorten the prompt`,
      { param: maxTokensField },
    );
  }

  const opts: SamplingOptions = {
    maxTokens,
    temperature: req.temperature ?? DEFAULTS.temperature,
    topP: req.top_p ?? DEFAULTS.topP,
    topK: req.top_k ?? DEFAULTS.topK,
    minP: req.min_p ?? DEFAULTS.minP,
    repeatPenalty: repeatPenalty(req),
  };
  if (req.seed != null) opts.seed = req.seed;
  const stop = typeof req.stop === "string" ? [req.stop] : (req.stop ?? []);
  const triggers = stop.filter((s) => s !== "");
  if (triggers.length > 0) opts.customStopTriggers = triggers;
  return opts;
}

/**
 * repeat_penalty (llama.cpp's multiplicative penalty) and OpenAI's frequency_penalty and
 * presence_penalty all map onto llama.cpp's penalties sampler, over the last 64 tokens.
 */
function repeatPenalty(req: SamplingRequest): false | LLamaContextualRepeatPenalty {
  const penalty = req.repeat_penalty ?? 1;
  const frequencyPenalty = req.frequency_penalty ?? 0;
  const presencePenalty = req.presence_penalty ?? 0;
  if (penalty === 1 && frequencyPenalty === 0 && presencePenalty === 0) return false;
  return { lastTokens: PENALTY_WINDOW, penalty, frequencyPenalty, presencePenalty, penalizeNewLine: true };
}

export type StopReason =
  | "eogToken"
  | "stopGenerationTrigger"
  | "customStopTrigger"
  | "maxTokens"
  | "abort"
  | "functionCalls";

export const finishReason = (stop: StopReason): "stop" | "length" =>
  stop === "maxTokens" ? "length" : "stop";
