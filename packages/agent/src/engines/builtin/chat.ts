import { randomUUID } from "node:crypto";
import type { ChatCompletion, ChatCompletionChunk } from "@beta9/protocol";
import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import { type ChatHistoryItem, LlamaChat } from "node-llama-cpp";
import { badRequest } from "./errors.ts";
import { serveGeneration, type WireFormat } from "./generation.ts";
import type { LoadedModel } from "./loaded-model.ts";
import type { ModelRegistry } from "./models.ts";
import { ChatCompletionRequest, type ChatMessage } from "./openai-types.ts";
import { samplingOptions } from "./sampling.ts";

/** POST /v1/chat/completions, rendered with the model's own chat template. */
export const chatRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: { registry: ModelRegistry } }> = async (
  app,
  { registry },
) => {
  app.post("/v1/chat/completions", { schema: { body: ChatCompletionRequest } }, async (req, reply) => {
    const body = req.body;
    refuseUnsupported(body);
    const model = registry.get(body.model);
    const history = toChatHistory(body.messages);
    const promptTokens = countPromptTokens(model, history);
    const maxField = body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    const sampling = samplingOptions(
      { ...body, max_tokens: body.max_completion_tokens ?? body.max_tokens },
      model,
      promptTokens,
      maxField,
    );
    return serveGeneration(req, reply, {
      model,
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      promptTokens,
      wire: chatWire(body.model),
      async run(sequence, io) {
        const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: model.chatWrapper });
        const reasoning: string[] = [];
        try {
          const r = await chat.generateResponse(history, {
            ...sampling,
            signal: io.signal,
            stopOnAbortSignal: true,
            onResponseChunk: (chunk) => {
              io.onTokens(chunk.tokens.length);
              if (chunk.type === undefined) io.onText(chunk.text);
              else if (chunk.segmentType === "thought") {
                reasoning.push(chunk.text);
                io.onReasoning(chunk.text);
              }
            },
          });
          return { text: r.response, reasoning: reasoning.join(""), stopReason: r.metadata.stopReason };
        } finally {
          chat.dispose({ disposeSequence: false });
        }
      },
    });
  });
};

function refuseUnsupported(body: ChatCompletionRequest): void {
  if (Array.isArray(body.tools) && body.tools.length > 0 && body.tool_choice !== "none")
    throw badRequest("the builtin engine does not support tools; send the request without tools", "tools");
  const format = body.response_format?.type;
  if (format !== undefined && format !== "text")
    throw badRequest(
      `the builtin engine does not support response_format ${format}; send "text" or leave it out`,
      "response_format",
    );
  if (body.logprobs === true) throw badRequest("the builtin engine does not return logprobs", "logprobs");
}

/** OpenAI messages → node-llama-cpp chat history, ending with the (empty or prefilled) model turn. */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  messages.forEach((m, i) => {
    if (m.role === "tool" || m.tool_calls !== undefined)
      throw badRequest("the builtin engine does not support tool calls or tool messages", `messages[${i}]`);
    const text = contentText(m, i);
    if (m.role === "system" || m.role === "developer") history.push({ type: "system", text });
    else if (m.role === "user") history.push({ type: "user", text });
    else history.push({ type: "model", response: [text] });
  });
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  return history;
}

function contentText(m: ChatMessage, i: number): string {
  const c = m.content;
  if (typeof c === "string") return c;
  if (c == null) {
    if (m.role === "assistant") return "";
    throw badRequest(`messages[${i}] has no content`, `messages[${i}].content`);
  }
  const parts: string[] = [];
  for (const part of c) {
    if (part.type !== "text" || typeof part.text !== "string")
      throw badRequest(
        `messages[${i}] has a ${part.type} part; the builtin engine takes text only`,
        `messages[${i}].content`,
      );
    parts.push(part.text);
  }
  return parts.join("\n");
}

/** Tokens of the whole rendered prompt (template included), as the model will see it. */
function countPromptTokens(model: LoadedModel, history: ChatHistoryItem[]): number {
  try {
    const { contextText } = model.chatWrapper.generateContextState({ chatHistory: history });
    return contextText.tokenize(model.model.tokenizer).length;
  } catch (err) {
    throw badRequest(
      `the model's chat template cannot render these messages: ${err instanceof Error ? err.message : String(err)}`,
      "messages",
    );
  }
}

function chatWire(modelName: string): WireFormat<ChatCompletion> {
  const id = `chatcmpl-${randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choices: ChatCompletionChunk["choices"]): ChatCompletionChunk => ({
    id,
    object: "chat.completion.chunk",
    created,
    model: modelName,
    choices,
  });
  return {
    opening: () => [
      chunk([{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]),
    ],
    delta: (text, kind) =>
      chunk([
        {
          index: 0,
          delta: kind === "content" ? { content: text } : { reasoning_content: text },
          logprobs: null,
          finish_reason: null,
        },
      ]),
    closing: (finish) => chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]),
    usageChunk: (usage) => ({ ...chunk([]), usage }),
    complete: (result, finish, usage) => ({
      id,
      object: "chat.completion",
      created,
      model: modelName,
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: result.text,
            ...(result.reasoning ? { reasoning_content: result.reasoning } : {}),
            refusal: null,
          },
          logprobs: null,
          finish_reason: finish,
        },
      ],
      usage,
    }),
  };
}
