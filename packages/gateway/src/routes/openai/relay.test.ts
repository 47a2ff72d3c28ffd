import http from "node:http";
import type { AddressInfo } from "node:net";
import type { UsageRow } from "@beta9/store";
import { afterEach, describe, expect, it } from "vitest";
import type { Caller } from "../../auth/api-keys.ts";
import { clientGone } from "../../http/client-gone.ts";
import { RequestMeter } from "../../metering/metering.ts";
import type { AgentResponse } from "../../router/request.ts";
import { relayBytes, relayEvents } from "./relay.ts";

const caller: Caller = {
  keyId: "k",
  workspaceId: "w",
  scopes: ["inference"],
  limits: { rpm: null, tpm: null },
  workspaceLimits: { rpm: null, tpm: null },
  operator: false,
  residency: { countries: null, text: "anywhere" },
};

/** An agent's answer made of `body`; `cancelled` says whether the relay cancelled it. */
function answer(body: AsyncIterable<Buffer>, contentType = "text/event-stream") {
  const state = { cancelled: false };
  const res: AgentResponse = {
    machineId: "m1",
    status: 200,
    headers: { "content-type": contentType },
    body,
    cancel: () => {
      state.cancelled = true;
    },
    closed: Promise.resolve(),
  };
  return { res, state };
}

const sse = (o: unknown) => Buffer.from(`data: ${typeof o === "string" ? o : JSON.stringify(o)}\n\n`);
const chunk = (text: string) => sse({ choices: [{ index: 0, delta: { content: text } }] });
const usageChunk = sse({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 } });

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

/** A server whose one route relays `res` as the gateway does; resolves with the recorded usage row. */
async function serve(
  make: () => { res: AgentResponse },
  kind: "events" | "bytes",
  clientWantsUsage = false,
  /** The store's write of the usage row (at once unless given). */
  write: () => Promise<void> | undefined = () => undefined,
): Promise<{ port: number; row: Promise<UsageRow> }> {
  let done!: (row: UsageRow) => void;
  const row = new Promise<UsageRow>((r) => (done = r));
  server = http.createServer(async (_req, raw) => {
    const { res } = make();
    const meter = new RequestMeter(caller, "m", (r) => {
      done(r);
      return write();
    });
    meter.machine(res.machineId);
    const gone = clientGone({ raw } as Parameters<typeof clientGone>[0]);
    raw.writeHead(200, { "content-type": String(res.headers["content-type"]) });
    const o = { meter, onFirstByte: () => meter.firstByte(), signal: gone.signal };
    if (kind === "events") await relayEvents(raw, res, { ...o, clientWantsUsage });
    else await relayBytes(raw, res, o);
    gone.dispose();
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return { port: (server!.address() as AddressInfo).port, row };
}

async function get(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return res.text();
}

describe("relayEvents", () => {
  it("passes events on as they are, drops the usage chunk nobody asked for, and meters it", async () => {
    const { port, row } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.concat([chunk("Par"), chunk("is")]);
            // an event split across reads
            const u = usageChunk;
            yield u.subarray(0, 10);
            yield u.subarray(10);
            yield sse("[DONE]");
          })(),
        ),
      "events",
    );
    const text = await get(port);
    expect(text).toBe(`${chunk("Par")}${chunk("is")}${sse("[DONE]")}`);
    expect(await row).toMatchObject({
      status: 200,
      prompt_tokens: 11,
      completion_tokens: 3,
      machine_id: "m1",
    });
    expect((await row).ttfb_ms).not.toBeNull();
  });

  it("hands the usage chunk to a client that asked for it", async () => {
    const { port } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.concat([chunk("x"), usageChunk, sse("[DONE]")]);
          })(),
        ),
      "events",
      true,
    );
    expect(await get(port)).toBe(`${chunk("x")}${usageChunk}${sse("[DONE]")}`);
  });

  it("ends a cut-off answer with the worker_lost event and meters it as cut off, tokens estimated", async () => {
    const { port, row } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.concat([chunk("a"), chunk("b")]);
            throw new Error("the machine serving this request went away mid-answer");
          })(),
        ),
      "events",
    );
    const text = await get(port);
    expect(text.startsWith(`${chunk("a")}${chunk("b")}`)).toBe(true);
    expect(text).toMatch(/"code":"worker_lost"/);
    expect(await row).toMatchObject({ status: 502, prompt_tokens: 0, completion_tokens: 2 });
  });

  it("meters an error event as an error", async () => {
    const { port, row } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.concat([chunk("a"), sse({ error: { message: "unloaded", code: "unavailable" } })]);
          })(),
        ),
      "events",
    );
    expect(await get(port)).toMatch(/unloaded/);
    expect((await row).status).toBe(502);
  });

  it("reads no faster than the client takes, and stops and cancels when the client leaves", async () => {
    let made = 0;
    let stopped = false;
    let cancelled: { cancelled: boolean } | undefined;
    const big = chunk("x".repeat(64 * 1024));
    const { port, row } = await serve(() => {
      const a = answer(
        (async function* () {
          try {
            for (;;) {
              made++;
              yield big;
            }
          } finally {
            stopped = true;
          }
        })(),
      );
      cancelled = a.state;
      return a;
    }, "events");
    const req = http.get({ port, host: "127.0.0.1", path: "/" });
    const res = await new Promise<http.IncomingMessage>((r) => req.once("response", r));
    res.pause();
    await new Promise((r) => setTimeout(r, 300));
    const whilePaused = made;
    expect(whilePaused).toBeLessThan(400);
    await new Promise((r) => setTimeout(r, 200));
    expect(made - whilePaused).toBeLessThan(5);
    req.destroy();
    expect((await row).status).toBe(499);
    expect(stopped).toBe(true);
    expect(cancelled?.cancelled).toBe(true);
  });
});

describe("relayBytes", () => {
  it("passes a JSON answer on byte for byte and meters its usage", async () => {
    const body = JSON.stringify({
      choices: [{ message: { content: "Paris" } }],
      usage: { prompt_tokens: 9, completion_tokens: 2 },
    });
    const { port, row } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.from(body.slice(0, 20));
            yield Buffer.from(body.slice(20));
          })(),
          "application/json",
        ),
      "bytes",
    );
    expect(await get(port)).toBe(body);
    expect(await row).toMatchObject({ status: 200, prompt_tokens: 9, completion_tokens: 2 });
  });

  it("breaks the response of a cut-off answer rather than end it short", async () => {
    const { port, row } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.from('{"choices":[');
            throw new Error("gone");
          })(),
          "application/json",
        ),
      "bytes",
    );
    await expect(get(port)).rejects.toThrow();
    expect((await row).status).toBe(502);
  });
});

describe("the answer's end waits for its usage row", () => {
  for (const kind of ["events", "bytes"] as const) {
    it(`holds the last bytes (${kind}) until the row is written, so a crash after cannot lose it`, async () => {
      const order: string[] = [];
      const { port } = await serve(
        () =>
          answer(
            (async function* () {
              yield kind === "events" ? chunk("a") : Buffer.from('{"usage":');
              yield kind === "events" ? sse("[DONE]") : Buffer.from('{"prompt_tokens":1}}');
            })(),
            kind === "events" ? "text/event-stream" : "application/json",
          ),
        kind,
        false,
        // A slow store: the write takes a while.
        () =>
          new Promise<void>((r) =>
            setTimeout(() => {
              order.push("row written");
              r();
            }, 100),
          ),
      );
      const text = await get(port);
      order.push("client has the answer");
      expect(text).toBe(
        kind === "events" ? `${chunk("a")}${sse("[DONE]")}` : '{"usage":{"prompt_tokens":1}}',
      );
      expect(order).toEqual(["row written", "client has the answer"]);
    });
  }
});
