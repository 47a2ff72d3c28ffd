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
 * A gateway stopped with SIGTERM (a restart, an upgrade) lets the answers under way finish before it
 * closes the agents' channels: the real `openai` client, the real gateway and agent, SmolLM2.
 */

let gw: GatewayProc;
let worker: ModelAgent;
let key: string;

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw);
  await worker.serve("smollm2");
  key = await inferenceKey(gw);
}, 120_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop("SIGKILL");
});

describe("gateway shutdown", () => {
  it("finishes a stream in flight on SIGTERM, refuses new requests meanwhile, then exits 0", async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "smollm2",
      messages: [{ role: "user", content: "Write a long story about a lighthouse keeper." }],
      max_tokens: 300,
      temperature: 0,
      stream: true,
    });
    let text = "";
    let finish: string | null | undefined;
    let signalled = false;
    let refused: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (!signalled && text.length > 0) {
        signalled = true;
        gw.proc.child.kill("SIGTERM");
        await gw.proc.waitForLog((e) => e.msg === "waiting for answers under way");
        // While it waits for this answer, the gateway takes no new work.
        refused = await client.models.list().catch((e: unknown) => e);
      }
    }
    expect(signalled).toBe(true);
    expect(finish).toBe("length");
    expect(text.length).toBeGreaterThan(200);
    // Refused in the API's own shape, with when to come back.
    expect(refused).toBeInstanceOf(OpenAI.APIError);
    expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((refused as InstanceType<typeof OpenAI.APIError>).headers?.get("retry-after")).toBe("5");
    expect(String((refused as Error).message)).toMatch(/shutting down/);
    expect(await gw.proc.exited).toBe(0);
  }, 120_000);
});
