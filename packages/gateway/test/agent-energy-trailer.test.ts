import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  startGateway,
  startModelAgent,
} from "@beta9/test-utils";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * The agent ends each answer it relays over the channel (HTTP/2) with its energy as a trailer
 * (x-beta9-agent-energy). The gateway's channel client must pass the answer on whole, streamed or
 * not: the real gateway, agent, builtin engine and SmolLM2, called with the real `openai` client.
 */

let gw: GatewayProc;
let worker: ModelAgent;
let client: OpenAI;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "energy-trailer" });
  await worker.serve("smollm2");
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: await inferenceKey(gw), maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

const ask = {
  model: "smollm2",
  messages: [{ role: "user" as const, content: "Name three colours." }],
  max_tokens: 24,
  temperature: 0,
};

describe("answers that end with the agent's energy trailer", () => {
  it("a non-streamed answer arrives whole through the gateway", async () => {
    const answer = await client.chat.completions.create(ask);
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(answer.choices[0]?.finish_reason).toMatch(/^(stop|length)$/);
    expect(answer.usage?.completion_tokens).toBeGreaterThan(0);
  }, 120_000);

  it("a streamed answer arrives whole, to its finish reason, through the gateway", async () => {
    const stream = await client.chat.completions.create({ ...ask, stream: true });
    let text = "";
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(finish).toMatch(/^(stop|length)$/);
    // The same question twice at temperature 0: the streamed text is the whole answer.
    const whole = await client.chat.completions.create(ask);
    expect(text).toBe(whole.choices[0]?.message.content);
  }, 120_000);
});
