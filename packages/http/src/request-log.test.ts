import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { serverOptions } from "./server-options.ts";

describe("a request's logger (req.log)", () => {
  it("is made only for a request that logs, whose lines still carry its id", async () => {
    const lines: Record<string, unknown>[] = [];
    let children = 0;
    const log = createLogger({
      name: "t",
      destination: { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) },
      onChild: () => children++,
    });
    const app = Fastify(serverOptions(log));
    app.get("/quiet", async () => ({ ok: true }));
    app.get("/loud", async (req) => {
      req.log.info({ model: "m" }, "answered");
      return { ok: true };
    });
    await app.ready();
    const before = children;
    for (let i = 0; i < 5; i++) expect((await app.inject({ url: "/quiet" })).statusCode).toBe(200);
    expect(children - before).toBe(0);
    const loud = await app.inject({ url: "/loud", headers: { "x-request-id": "req-7" } });
    expect(loud.statusCode).toBe(200);
    expect(children - before).toBe(1);
    expect(lines.find((l) => l.msg === "answered")).toMatchObject({ request_id: "req-7", model: "m" });
    await app.close();
  });
});
