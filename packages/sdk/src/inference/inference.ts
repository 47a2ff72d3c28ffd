import type { OpenAIRequest } from "@beta9/protocol";
import type { Call, Transport } from "../transport.ts";
import { CompletionStream } from "./completion-stream.ts";
import { completionOf, embeddingsOf, modelsOf, samplingFields } from "./openai-wire.ts";
import type {
  ChatRequest,
  Completion,
  Embeddings,
  EmbedRequest,
  GenerateRequest,
  InferenceOptions,
  ModelInfo,
} from "./types.ts";
import { checkChat, checkEmbed, checkGenerate } from "./validate.ts";

/** Long enough for a cold start (the gateway loads the model first; it gives up after 5 min by default). */
export const DEFAULT_INFERENCE_TIMEOUT_MS = 10 * 60_000;

/**
 * Calling models through the gateway's OpenAI-compatible API (`/v1`), or an agent's own `/v1` when the
 * client's base URL is the agent's. Needs a key with the inference (or admin) scope.
 *
 * ```ts
 * const r = await b9.inference.chat({ model: "smollm2-135m", messages: [{ role: "user", content: "Hi" }] });
 * for await (const c of b9.inference.chatStream({ model, messages })) process.stdout.write(c.content);
 * ```
 */
export class Inference {
  readonly #http: Transport;
  readonly #timeoutMs: number;

  constructor(http: Transport, timeoutMs: number = DEFAULT_INFERENCE_TIMEOUT_MS) {
    this.#http = http;
    this.#timeoutMs = timeoutMs;
  }

  /** A chat answer: whole (`Promise<Completion>`), or with `stream: true` a `CompletionStream`. */
  chat(request: ChatRequest & { stream: true }, options?: InferenceOptions): CompletionStream;
  chat(
    request: ChatRequest & { stream?: false | undefined },
    options?: InferenceOptions,
  ): Promise<Completion>;
  chat(request: ChatRequest, options?: InferenceOptions): CompletionStream | Promise<Completion>;
  chat(request: ChatRequest, options?: InferenceOptions): CompletionStream | Promise<Completion> {
    if (request?.stream === true) return this.chatStream(request, options);
    try {
      checkChat("chat", request);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#complete("/v1/chat/completions", chatBody(request), options);
  }

  /** The chat answer as it is generated. */
  chatStream(request: ChatRequest, options?: InferenceOptions): CompletionStream {
    checkChat("chatStream", request);
    return this.#stream("/v1/chat/completions", chatBody(request), options);
  }

  /** A text completion of `prompt` (no chat template): whole, or with `stream: true` a stream. */
  generate(request: GenerateRequest & { stream: true }, options?: InferenceOptions): CompletionStream;
  generate(
    request: GenerateRequest & { stream?: false | undefined },
    options?: InferenceOptions,
  ): Promise<Completion>;
  generate(request: GenerateRequest, options?: InferenceOptions): CompletionStream | Promise<Completion>;
  generate(request: GenerateRequest, options?: InferenceOptions): CompletionStream | Promise<Completion> {
    if (request?.stream === true) return this.generateStream(request, options);
    try {
      checkGenerate("generate", request);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#complete("/v1/completions", generateBody(request), options);
  }

  generateStream(request: GenerateRequest, options?: InferenceOptions): CompletionStream {
    checkGenerate("generateStream", request);
    return this.#stream("/v1/completions", generateBody(request), options);
  }

  /** Vectors for one text or several. */
  async embed(request: EmbedRequest, options?: InferenceOptions): Promise<Embeddings> {
    checkEmbed("embed", request);
    const body = { model: request.model, input: request.input, encoding_format: "float" };
    return embeddingsOf(await this.#http.request(this.#call("/v1/embeddings", body, options)));
  }

  /** The models the machines behind the gateway serve now. */
  async listModels(options?: InferenceOptions): Promise<ModelInfo[]> {
    return modelsOf(await this.#http.request({ method: "GET", path: "/v1/models", options }));
  }

  async #complete(
    path: string,
    body: Record<string, unknown>,
    options?: InferenceOptions,
  ): Promise<Completion> {
    return completionOf(await this.#http.request(this.#call(path, body, options)));
  }

  #stream(path: string, body: Record<string, unknown>, options?: InferenceOptions): CompletionStream {
    // Always ask for the usage chunk: the stream's result() then has the token counts.
    const streamed = { ...body, stream: true, stream_options: { include_usage: true } };
    return new CompletionStream(
      (signal) =>
        this.#http.open({
          ...this.#call(path, streamed, { ...options, signal }),
          accept: "text/event-stream",
        }),
      { baseUrl: this.#http.baseUrl, signal: options?.signal },
    );
  }

  #call(path: string, body: Record<string, unknown>, options?: InferenceOptions): Call {
    return { method: "POST", path, body, options, timeoutMs: options?.timeoutMs ?? this.#timeoutMs };
  }
}

function chatBody(r: ChatRequest): OpenAIRequest {
  const messages = r.messages.map((m) => ({
    role: m.role,
    content: m.content,
    ...(m.name === undefined ? {} : { name: m.name }),
  }));
  return { ...samplingFields(r), model: r.model, messages };
}

function generateBody(r: GenerateRequest): OpenAIRequest {
  return { ...samplingFields(r), model: r.model, prompt: r.prompt };
}
