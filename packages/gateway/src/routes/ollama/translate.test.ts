import { describe, expect, it } from "vitest";
import { OllamaError } from "./errors.ts";
import { expectShape, fixture } from "./testing/fixtures.ts";
import {
  chatRequest,
  embedAnswer,
  embeddingsAnswer,
  embeddingsRequest,
  embedRequest,
  generateRequest,
  loadAnswer,
  samplingFromOptions,
  toOpenAIMessages,
} from "./translate.ts";

const rejects400 = (f: () => unknown, message: RegExp) => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(OllamaError);
    expect((err as OllamaError).status).toBe(400);
    expect((err as OllamaError).message).toMatch(message);
    return;
  }
  expect.fail("expected a 400");
};

describe("Ollama requests → OpenAI requests", () => {
  it("maps a chat: messages, options, format; streams by default and asks for usage", () => {
    const up = chatRequest({
      model: "smollm2",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
      ],
      options: {
        temperature: 0.2,
        top_p: 0.9,
        top_k: 20,
        min_p: 0.05,
        seed: 42,
        num_predict: 64,
        stop: ["\n", "user:"],
        repeat_penalty: 1.1,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        num_ctx: 8192,
        mirostat: 1,
      },
      format: "json",
      keep_alive: "5m",
    });
    expect(up).toEqual({
      model: "smollm2",
      stream: true,
      loadOnly: false,
      unload: false,
      path: "/v1/chat/completions",
      body: {
        model: "smollm2",
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hi" },
        ],
        stream: true,
        stream_options: { include_usage: true },
        temperature: 0.2,
        top_p: 0.9,
        top_k: 20,
        min_p: 0.05,
        seed: 42,
        max_tokens: 64,
        stop: ["\n", "user:"],
        repeat_penalty: 1.1,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        response_format: { type: "json_object" },
      },
    });
    expect(chatRequest({ model: "m", messages: [], stream: false }).stream).toBe(false);
    expect(chatRequest({ model: "m", messages: [] }).loadOnly).toBe(true);
    // `keep_alive: 0` with nothing to generate is `ollama stop`; with a prompt it is only a short keep.
    for (const keep of [0, "0", "0s", "0m"])
      expect(chatRequest({ model: "m", messages: [], keep_alive: keep }).unload).toBe(true);
    expect(chatRequest({ model: "m", messages: [], keep_alive: "5m" }).unload).toBe(false);
    expect(generateRequest({ model: "m", prompt: "hi", keep_alive: 0 }).unload).toBe(false);
  });

  it("maps a JSON schema format to structured output, and num_predict -1/-2 to no limit", () => {
    const schema = { type: "object", properties: { age: { type: "integer" } }, required: ["age"] };
    expect(
      chatRequest({ model: "m", messages: [{ role: "user", content: "x" }], format: schema }).body
        .response_format,
    ).toEqual({
      type: "json_schema",
      json_schema: { name: "response", schema, strict: true },
    });
    expect(samplingFromOptions({ num_predict: -1 })).toEqual({});
    expect(samplingFromOptions({ num_predict: -2 })).toEqual({});
    expect(samplingFromOptions({ stop: "END" })).toEqual({ stop: ["END"] });
  });

  it("turns images into data URLs and Ollama's tool calls into OpenAI's, with matching ids", () => {
    const png = "iVBORw0KGgoAAAANSUhEUgAAAG0AAABmCAYAAADBPx";
    const msgs = toOpenAIMessages([
      { role: "user", content: "What is in this picture?", images: [png] },
      {
        role: "assistant",
        content: "",
        tool_calls: [{ function: { name: "get_current_weather", arguments: { location: "Paris, FR" } } }],
      },
      { role: "tool", content: "22 degrees", tool_name: "get_current_weather" },
    ]);
    expect(msgs).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "What is in this picture?" },
          { type: "image_url", image_url: { url: `data:image/png;base64,${png}` } },
        ],
      },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: "call_1_0",
            type: "function",
            function: { name: "get_current_weather", arguments: '{"location":"Paris, FR"}' },
          },
        ],
      },
      { role: "tool", content: "22 degrees", tool_call_id: "call_1_0" },
    ]);
  });

  it("refuses bad input with 400 and Ollama-like words", () => {
    rejects400(() => chatRequest(undefined), /missing request body/);
    rejects400(() => chatRequest([]), /JSON object/);
    rejects400(() => chatRequest({ messages: [] }), /^model is required$/);
    rejects400(() => chatRequest({ model: "m".repeat(3_000_000), messages: [] }), /longer than 128/);
    rejects400(() => chatRequest({ model: "m", messages: [{ role: "robot", content: "x" }] }), /role/);
    rejects400(() => chatRequest({ model: "m", messages: "hi" }), /messages must be an array/);
    rejects400(() => chatRequest({ model: "m", options: { temperature: "hot" } }), /option "temperature"/);
    rejects400(() => chatRequest({ model: "m", options: { top_k: 1.5 } }), /option "top_k"/);
    rejects400(() => chatRequest({ model: "m", format: "xml" }), /format/);
    rejects400(() => chatRequest({ model: "m", stream: "yes" }), /stream/);
    rejects400(() => generateRequest({ model: "m", prompt: 3 }), /prompt/);
    rejects400(() => generateRequest({ model: "m", prompt: "x", template: "{{ .Prompt }}" }), /template/);
    rejects400(() => embedRequest({ model: "m", input: [1, 2] }), /input/);
  });

  it("maps generate: templated (a one-turn chat, with system), raw and suffix (text completion), empty (load)", () => {
    const chat = generateRequest({
      model: "m",
      prompt: "Why?",
      system: "Be brief.",
      options: { num_predict: 5 },
    });
    expect(chat.path).toBe("/v1/chat/completions");
    expect(chat.body.messages).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Why?" },
    ]);
    expect(chat.body.max_tokens).toBe(5);
    // Clients built on Go structs send empty strings for fields they do not use.
    expect(generateRequest({ model: "m", prompt: "Why?", system: "", template: "" }).body.messages).toEqual([
      { role: "user", content: "Why?" },
    ]);
    const raw = generateRequest({ model: "m", prompt: "[INST] why? [/INST]", raw: true });
    expect(raw.path).toBe("/v1/completions");
    expect(raw.body.prompt).toBe("[INST] why? [/INST]");
    expect(raw.body.stream).toBe(true);
    const fim = generateRequest({ model: "m", prompt: "def f(a, b):", suffix: "    return result" });
    expect(fim.path).toBe("/v1/completions");
    expect(fim.body.suffix).toBe("    return result");
    expect(generateRequest({ model: "m" }).loadOnly).toBe(true);
    expect(generateRequest({ model: "m", prompt: "" }).loadOnly).toBe(true);
  });

  it("maps embed (string or list) and the older embeddings (prompt)", () => {
    expect(embedRequest({ model: "m", input: "hello" })).toEqual({ model: "m", inputs: ["hello"] });
    expect(embedRequest({ model: "m", input: ["a", "b"], truncate: true, dimensions: 576 })).toEqual({
      model: "m",
      inputs: ["a", "b"],
      dimensions: 576,
    });
    expect(embedRequest({ model: "m", input: "" }).inputs).toEqual([]);
    expect(embeddingsRequest({ model: "m", prompt: "hello" })).toEqual({ model: "m", inputs: ["hello"] });
    expect(embeddingsRequest({ name: "m" })).toEqual({ model: "m", inputs: [] });
  });
});

describe("OpenAI answers → Ollama answers, against Ollama's real shapes", () => {
  const upstream = fixture("upstream/upstream-embeddings.json");

  it("embed: one vector per input, in order, with the prompt's token count", () => {
    const ours = embedAnswer("smollm2", upstream, 12.5);
    expectShape(ours, fixture("embed.json"));
    expect(ours.embeddings).toHaveLength(2);
    for (const v of ours.embeddings) expect(v).toHaveLength(576);
    const data = (upstream as { data: { embedding: number[] }[] }).data;
    expect(ours.embeddings[1]).toEqual(data[1]!.embedding);
    expect(ours.total_duration).toBe(12_500_000);
    expect(ours.prompt_eval_count).toBe(
      (upstream as { usage: { prompt_tokens: number } }).usage.prompt_tokens,
    );
  });

  it("embeddings: the first vector", () => {
    const ours = embeddingsAnswer(upstream);
    expectShape(ours, fixture("embeddings.json"));
    expect(ours.embedding).toHaveLength(576);
  });

  it("load answers", () => {
    expectShape(loadAnswer("chat", "m", new Date().toISOString()), fixture("chat-load.json"), {
      deep: ["message"],
    });
    expectShape(loadAnswer("generate", "m", new Date().toISOString()), fixture("generate-load.json"));
  });
});
