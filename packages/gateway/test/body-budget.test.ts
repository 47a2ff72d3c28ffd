import net from "node:net";
import { createLogger } from "@beta9/http";
import { tempDir } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildGateway, type Gateway } from "../src/app.ts";
import { gatewayConfig } from "../src/config.ts";

/*
 * The memory request bodies may hold at once (security review, issue 10, finding 11): a gateway with
 * a 64 KiB budget, listening on a port, and raw HTTP clients that send their bodies slowly.
 */

let gw: Gateway;
let port: number;

beforeAll(async () => {
  const log = createLogger({ name: "test", level: "silent", pretty: false });
  gw = await buildGateway(gatewayConfig({ dataDir: tempDir("b9-gwt-"), inferenceBodyBudget: 64 * 1024 }), {
    log,
  });
  await gw.app.listen({ host: "127.0.0.1", port: 0 });
  port = (gw.app.server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await gw?.close();
});

/** A chat request whose `size`-byte body is sent up to `first` bytes now; `rest()` sends the others. */
function slowRequest(size: number, first: number) {
  const s = net.connect(port, "127.0.0.1");
  const body = Buffer.from(JSON.stringify({ model: "nobody-serves-this", prompt: "x".repeat(size) }));
  let text = "";
  const answer = new Promise<{ status: number; body: string; headers: string }>((resolve, reject) => {
    s.on("data", (b: Buffer) => {
      text += b.toString();
    });
    s.on("end", () => {
      const [head = "", payload = ""] = text.split("\r\n\r\n");
      resolve({ status: Number(head.slice(9, 12)), headers: head, body: payload });
    });
    s.on("error", reject);
  });
  s.write(
    `POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${gw.adminKey}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  s.write(body.subarray(0, first));
  return { answer, rest: () => s.write(body.subarray(first)) };
}

describe("the gateway-wide budget of request bodies in flight", () => {
  it("refuses a body that does not fit beside those being read (503, Retry-After), and takes it once they are done", async () => {
    const holding = slowRequest(40 * 1024, 1024);
    // The first body is being read (its 40 KiB are held); a second of 40 KiB does not fit in 64.
    let refused: Awaited<ReturnType<typeof slowRequest>["answer"]> | undefined;
    for (let i = 0; i < 50 && refused?.status !== 503; i++)
      refused = await slowRequest(40 * 1024, 40 * 1024 + 100).answer;
    expect(refused?.status).toBe(503);
    expect(refused?.headers).toMatch(/retry-after: \d+/i);
    expect(JSON.parse(refused!.body)).toMatchObject({ error: { code: "unavailable" } });
    // The first one, sent in full, is answered as usual (nobody serves that model).
    holding.rest();
    expect((await holding.answer).status).toBe(404);
    // Its bytes are given back: the same body fits now.
    expect((await slowRequest(40 * 1024, 40 * 1024 + 100).answer).status).toBe(404);
  });
});
