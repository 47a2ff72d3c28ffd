import type { ChatRequest, EmbedRequest, GenerateRequest, SamplingOptions } from "./types.ts";

const ROLES = new Set(["system", "user", "assistant", "tool"]);

/*
 * Arguments are checked before anything is sent, so a mistake is named where it was made (which
 * field, what is allowed) instead of coming back as a server's 400 about a JSON path.
 */

export function checkChat(method: string, r: ChatRequest): void {
  checkObject(method, r);
  checkModel(method, r.model);
  if (!Array.isArray(r.messages) || r.messages.length === 0) {
    throw new TypeError(
      `${method}: messages must be a non-empty array such as [{ role: "user", content: "Hello!" }]`,
    );
  }
  r.messages.forEach((m, i) => {
    if (typeof m !== "object" || m === null)
      throw new TypeError(`${method}: messages[${i}] is not an object`);
    if (!ROLES.has(m.role)) {
      throw new TypeError(
        `${method}: messages[${i}].role is ${JSON.stringify(m.role)}; use "system", "user", "assistant" or "tool"`,
      );
    }
    if (typeof m.content !== "string")
      throw new TypeError(`${method}: messages[${i}].content must be a string`);
  });
  checkSampling(method, r);
}

export function checkGenerate(method: string, r: GenerateRequest): void {
  checkObject(method, r);
  checkModel(method, r.model);
  if (typeof r.prompt !== "string") throw new TypeError(`${method}: prompt must be a string`);
  checkSampling(method, r);
}

export function checkEmbed(method: string, r: EmbedRequest): void {
  checkObject(method, r);
  checkModel(method, r.model);
  const inputs = typeof r.input === "string" ? [r.input] : r.input;
  if (!Array.isArray(inputs) || inputs.length === 0 || inputs.some((t) => typeof t !== "string")) {
    throw new TypeError(`${method}: input must be a string or a non-empty array of strings`);
  }
}

function checkObject(method: string, r: unknown): void {
  if (typeof r !== "object" || r === null)
    throw new TypeError(`${method}: pass one object, e.g. { model, ... }`);
}

function checkModel(method: string, model: unknown): void {
  if (typeof model !== "string" || model.trim() === "") {
    throw new TypeError(`${method}: model must be the name of a model, e.g. "smollm2-135m"`);
  }
}

function checkSampling(method: string, o: SamplingOptions): void {
  if (o.maxTokens !== undefined && (!Number.isSafeInteger(o.maxTokens) || o.maxTokens < 1)) {
    throw new RangeError(`${method}: maxTokens must be a whole number of at least 1, not ${o.maxTokens}`);
  }
  range(method, "temperature", o.temperature, 0, 2);
  range(method, "topP", o.topP, 0, 1);
  range(method, "presencePenalty", o.presencePenalty, -2, 2);
  range(method, "frequencyPenalty", o.frequencyPenalty, -2, 2);
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) {
    throw new RangeError(`${method}: seed must be a whole number, not ${o.seed}`);
  }
  const stops = typeof o.stop === "string" ? [o.stop] : o.stop;
  if (stops !== undefined && (!Array.isArray(stops) || stops.some((s) => typeof s !== "string"))) {
    throw new TypeError(`${method}: stop must be a string or an array of strings`);
  }
  if (o.extra !== undefined && (typeof o.extra !== "object" || o.extra === null || Array.isArray(o.extra))) {
    throw new TypeError(`${method}: extra must be an object of request fields`);
  }
}

function range(method: string, name: string, value: number | undefined, min: number, max: number): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new RangeError(`${method}: ${name} must be a number from ${min} to ${max}, not ${value}`);
  }
}
