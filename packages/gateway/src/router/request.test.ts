import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentLink, MachineRegistry, ServingMachine } from "../machines/registry.ts";
import { requestModel } from "./request.ts";
import { Router } from "./router.ts";

/*
 * requestModel against real HTTP/2 servers standing in for agents (the channel is HTTP/2 too), one
 * server per "machine", each answering as the test says.
 */

type Behaviour = (stream: http2.ServerHttp2Stream) => void;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

async function machine(id: string, behave: Behaviour): Promise<ServingMachine & { resets: number[] }> {
  const resets: number[] = [];
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    stream.on("close", () => {
      if (stream.rstCode) resets.push(stream.rstCode);
    });
    behave(stream);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  session.on("error", () => {});
  cleanup.push(() => {
    session.destroy();
    server.close();
  });
  const link: AgentLink = {
    close: () => session.destroy(),
    request: (init) => {
      const s = session.request({ ":method": init.method, ":path": init.path, ...init.headers });
      s.end(init.body);
      return s;
    },
  };
  return { id, link, resets };
}

function routerOf(machines: ServingMachine[]): Router {
  // Always the first machine not yet tried, so the order is known.
  const registry = { serving: () => machines } as unknown as MachineRegistry;
  const router = new Router(registry);
  router.pick = (_model, exclude = new Set()) => machines.find((m) => !exclude.has(m.id));
  return router;
}

const init = { path: "/v1/chat/completions", body: "{}", headers: {}, headersTimeoutMs: 2_000 };

const sse: Behaviour = (stream) => {
  stream.respond({ ":status": 200, "content-type": "text/event-stream" });
  stream.write("data: 1\n\n");
  stream.end("data: [DONE]\n\n");
};

async function text(body: AsyncIterable<Buffer>): Promise<string> {
  let out = "";
  for await (const b of body) out += b.toString();
  return out;
}

describe("requestModel", () => {
  it("tries another machine when one answers 503 or never answers, and reads the answer", async () => {
    const busy = await machine("busy", (s) => s.respond({ ":status": 503 }, { endStream: true }));
    const gone = await machine("gone", (s) => s.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const ok = await machine("ok", sse);
    const retried: string[] = [];
    const router = routerOf([busy, gone, ok]);
    const r = await requestModel(router, "m", init, { onRetry: (id) => retried.push(id) });
    expect(r.kind).toBe("answered");
    if (r.kind !== "answered") return;
    expect(retried).toEqual(["busy", "gone"]);
    expect(r.response).toMatchObject({ machineId: "ok", status: 200 });
    expect(await text(r.response.body)).toBe("data: 1\n\ndata: [DONE]\n\n");
    await r.response.closed;
    expect(router.outstanding("ok")).toBe(0);
    expect(ok.resets).toEqual([]);
  });

  it("gives the last machine's 503 to the caller, and says when no machine serves the model", async () => {
    const a = await machine("a", (s) => s.respond({ ":status": 503 }, { endStream: true }));
    const r = await requestModel(routerOf([a]), "m", init, { maxAttempts: 1 });
    expect(r.kind === "answered" && r.response.status).toBe(503);
    expect((await requestModel(routerOf([]), "m", init)).kind).toBe("not_served");
    const b = await machine("b", (s) => s.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    expect(await requestModel(routerOf([b]), "m", init)).toMatchObject({ kind: "failed" });
  });

  it("a machine silent past the headers timeout is cancelled and another tried", async () => {
    const silent = await machine("silent", () => {});
    const ok = await machine("ok", sse);
    const r = await requestModel(routerOf([silent, ok]), "m", { ...init, headersTimeoutMs: 200 });
    expect(r.kind === "answered" && r.response.machineId).toBe("ok");
    await new Promise((res) => setTimeout(res, 50));
    expect(silent.resets).toEqual([http2.constants.NGHTTP2_CANCEL]);
  });

  it("cancelling (or the caller's signal) resets the stream with CANCEL; the router stops counting it", async () => {
    const endless = await machine("endless", (s) => {
      s.respond({ ":status": 200, "content-type": "text/event-stream" });
      const t = setInterval(() => s.write("data: x\n\n"), 5);
      s.on("close", () => clearInterval(t));
    });
    const router = routerOf([endless]);
    const abort = new AbortController();
    const r = await requestModel(router, "m", { ...init, signal: abort.signal });
    if (r.kind !== "answered") return expect.fail(r.kind);
    expect(router.outstanding("endless")).toBe(1);
    const reading = (async () => {
      for await (const _ of r.response.body) abort.abort();
    })();
    await expect(reading).rejects.toThrow();
    await r.response.closed;
    await new Promise((res) => setTimeout(res, 50));
    expect(endless.resets).toEqual([http2.constants.NGHTTP2_CANCEL]);
    expect(router.outstanding("endless")).toBe(0);
  });

  it("an answer cut off by the machine (stream reset, or the whole channel gone) throws, never ends as if whole", async () => {
    for (const cut of [
      (s: http2.ServerHttp2Stream) => s.destroy(new Error("the engine died")),
      (s: http2.ServerHttp2Stream) => s.session?.destroy(),
    ]) {
      const dies = await machine("dies", (s) => {
        s.respond({ ":status": 200, "content-type": "text/event-stream" });
        s.write("data: 1\n\n", () => setTimeout(() => cut(s), 20));
      });
      const r = await requestModel(routerOf([dies]), "m", init);
      if (r.kind !== "answered") return expect.fail(r.kind);
      await expect(text(r.response.body)).rejects.toThrow();
    }
  });
});
