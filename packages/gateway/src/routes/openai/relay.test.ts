import http from "node:http";
import type { AddressInfo } from "node:net";
import type { UsageRow } from "@beta9/store";
import { afterEach, describe, expect, it } from "vitest";
import type { Caller } from "../../auth/api-keys.ts";
import type { CarbonSource } from "../../carbon/footprint.ts";
import { GridIntensity } from "../../carbon/intensity.ts";
import { clientGone } from "../../http/client-gone.ts";
import { RequestMeter } from "../../metering/metering.ts";
import type { AgentResponse } from "../../router/request.ts";
import { FOOTPRINT_TRAILER, relayBytes, relayEvents } from "./relay.ts";

const caller: Caller = {
  keyId: "k",
  workspaceId: "w",
  scopes: ["inference"],
  limits: { rpm: null, tpm: null },
  workspaceLimits: { rpm: null, tpm: null },
  operator: false,
  residency: { countries: null, text: "anywhere" },
  auditContent: false,
};

/**
 * An agent's answer made of `body`; `cancelled` says whether the relay cancelled it. `trailers`: what
 * the agent sent after the body (its energy).
 */
function answer(
  body: AsyncIterable<Buffer>,
  contentType = "text/event-stream",
  trailers?: Record<string, string>,
) {
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
    trailers: () => trailers,
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
  /** Footprints from the answer's energy trailer; with it, relayBytes writes the head itself, as the route does. */
  carbon?: CarbonSource,
): Promise<{ port: number; row: Promise<UsageRow> }> {
  let done!: (row: UsageRow) => void;
  const row = new Promise<UsageRow>((r) => (done = r));
  server = http.createServer(async (_req, raw) => {
    const { res } = make();
    const meter = new RequestMeter(
      caller,
      "m",
      (r) => {
        done(r);
        return write();
      },
      carbon,
    );
    meter.machine(res.machineId);
    const gone = clientGone({ raw } as Parameters<typeof clientGone>[0]);
    const headers = { "content-type": String(res.headers["content-type"]) };
    const head = carbon && kind === "bytes" ? { status: 200, headers } : undefined;
    if (!head) raw.writeHead(200, kind === "events" ? { ...headers, trailer: FOOTPRINT_TRAILER } : headers);
    const o = { meter, onFirstByte: () => meter.firstByte(), signal: gone.signal };
    if (kind === "events") await relayEvents(raw, res, { ...o, clientWantsUsage });
    else await relayBytes(raw, res, { ...o, head });
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

describe("an answer's footprint", () => {
  // The machine is in PL (661.9 gCO2e/kWh in the shipped table) with a PUE of 1.2.
  const carbon: CarbonSource = {
    intensity: new GridIntensity(),
    machine: () => ({ country: "PL", pue: 1.2 }),
  };
  const energy = {
    "x-beta9-agent-energy": JSON.stringify({ wh: 0.5, method: "counter", confidence: "high", sources: [] }),
  };
  const co2e = (0.5 * 1.2 * 661.9) / 1000;
  const json = (size: number) =>
    JSON.stringify({
      choices: [{ message: { content: "x".repeat(size) } }],
      usage: { prompt_tokens: 3, completion_tokens: 1 },
    });

  /** The answer's status, headers, body and HTTP trailers, as Node's client reads them. */
  function fetchWithTrailers(port: number) {
    return new Promise<{ headers: http.IncomingHttpHeaders; body: string; trailers: NodeJS.Dict<string> }>(
      (resolve, reject) => {
        http
          .get(`http://127.0.0.1:${port}/`, (res) => {
            const parts: Buffer[] = [];
            res.on("data", (b: Buffer) => parts.push(b));
            res.on("end", () =>
              resolve({
                headers: res.headers,
                body: Buffer.concat(parts).toString(),
                trailers: res.trailers,
              }),
            );
          })
          .on("error", reject);
      },
    );
  }

  it("rides in a whole answer's headers, and on its usage row", async () => {
    const body = json(10);
    const { port, row } = await serve(
      () =>
        answer(
          (async function* () {
            yield Buffer.from(body);
          })(),
          "application/json",
          energy,
        ),
      "bytes",
      false,
      undefined,
      carbon,
    );
    const got = await fetchWithTrailers(port);
    expect(got.body).toBe(body);
    expect(Number(got.headers["x-beta9-energy-wh"])).toBe(0.5);
    expect(Number(got.headers["x-beta9-co2e-g"])).toBeCloseTo(co2e, 6);
    expect(got.headers["x-beta9-carbon-intensity"]).toBe(
      "661.9 gCO2e/kWh; zone=PL; source=ember:2023; confidence=medium; pue=1.2",
    );
    expect(await row).toMatchObject({ energy_wh: 0.5, pue: 1.2, grid_zone: "PL", energy_method: "counter" });
    expect((await row).co2e_g).toBeCloseTo(co2e, 9);
  });

  it("comes in the HTTP trailers of an answer over 1 MiB (its bytes passed on as they come)", async () => {
    const body = json(1_500_000);
    const { port } = await serve(
      () =>
        answer(
          (async function* () {
            for (let i = 0; i < body.length; i += 65_536) yield Buffer.from(body.slice(i, i + 65_536));
          })(),
          "application/json",
          energy,
        ),
      "bytes",
      false,
      undefined,
      carbon,
    );
    const got = await fetchWithTrailers(port);
    expect(got.body).toBe(body);
    expect(got.headers["x-beta9-energy-wh"]).toBeUndefined();
    expect(got.headers.trailer).toContain("x-beta9-energy-wh");
    expect(Number(got.trailers["x-beta9-co2e-g"])).toBeCloseTo(co2e, 6);
  });

  it("rides in a stream's usage chunk as `beta9`, and in its trailers; an answer without energy has none", async () => {
    const stream = () =>
      (async function* () {
        yield chunk("Hi");
        yield usageChunk;
        yield sse("[DONE]");
      })();
    const { port, row } = await serve(
      () => answer(stream(), "text/event-stream", energy),
      "events",
      true,
      undefined,
      carbon,
    );
    const got = await fetchWithTrailers(port);
    const usage = JSON.parse(got.body.split("\n\n").at(-3)!.slice("data: ".length));
    expect(usage.usage.completion_tokens).toBe(3);
    expect(usage.beta9).toMatchObject({ energy_wh: 0.5, grid_zone: "PL", pue: 1.2, basis: "location" });
    expect(Number(got.trailers["x-beta9-energy-wh"])).toBe(0.5);
    expect((await row).energy_wh).toBe(0.5);

    server?.closeAllConnections();
    await new Promise((r) => server!.close(r));
    const none = await serve(() => answer(stream()), "events", true, undefined, carbon);
    const plain = await fetchWithTrailers(none.port);
    expect(plain.body).not.toContain("beta9");
    expect(plain.trailers["x-beta9-energy-wh"]).toBeUndefined();
    // Nothing measured: unknown, not zero.
    expect(await none.row).toMatchObject({ energy_wh: null, co2e_g: null });
  });
});
