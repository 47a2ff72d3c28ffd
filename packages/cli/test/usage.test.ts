import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ADMIN_KEY, type FakeGateway, READ_KEY, startFakeGateway } from "./fake-gateway.ts";
import { b9, NOW } from "./harness.ts";

let gateway: FakeGateway;
let env: Record<string, string>;
beforeEach(async () => {
  gateway = await startFakeGateway(() => NOW);
  env = {
    BETA9_GATEWAY: gateway.url,
    BETA9_API_KEY: READ_KEY,
    BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json",
  };
});
afterEach(() => gateway.close());

describe("b9 usage", () => {
  it("asks for the last 24 hours by model and prints a table", async () => {
    const r = await b9(env, "usage");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(gateway.requests[0]).toMatchObject({
      method: "GET",
      url: `/api/v1/usage?since=${encodeURIComponent(new Date(NOW - 86_400_000).toISOString())}&group_by=model`,
    });
    expect(r.stdout).toBe(
      [
        "MODEL         REQUESTS   PROMPT TOKENS   COMPLETION TOKENS   ERRORS   P50     P95     WH   GCO2E",
        "llama3.2:1b   10         200             80                  1        250ms   980ms   -    -",
        "smollm2       3          60              24                  0        40ms    60ms    -    -",
        "",
      ].join("\n"),
    );
  });

  it("groups by key with the key's name, and by day; --since takes a duration or a date", async () => {
    const byKey = await b9(env, "usage", "--by", "key", "--since", "7d");
    expect(gateway.requests[0]?.url).toBe(
      `/api/v1/usage?since=${encodeURIComponent(new Date(NOW - 7 * 86_400_000).toISOString())}&group_by=key`,
    );
    expect(byKey.stdout).toBe(
      [
        "KEY     NAME   REQUESTS   PROMPT TOKENS   COMPLETION TOKENS   ERRORS   P50     P95    WH   GCO2E",
        "key_1   ci     12         240             96                  0        300ms   1.2s   -    -",
        "key_9   -      1          20              8                   1        5ms     5ms    -    -",
        "",
      ].join("\n"),
    );
    const byDay = await b9(
      env,
      "usage",
      "--by",
      "day",
      "--since",
      "2026-02-01",
      "--until",
      "2026-03-01T00:00:00Z",
    );
    expect(gateway.requests[1]?.url).toBe(
      "/api/v1/usage?since=2026-02-01&until=2026-03-01T00%3A00%3A00Z&group_by=day",
    );
    expect(byDay.stdout.split("\n")[1]).toBe(
      "2026-03-01   13         260             104                 1        250ms   13s   -    -",
    );
  });

  it("--json prints the gateway's answer; an empty window is a note on stderr", async () => {
    const json = await b9(env, "usage", "--json");
    expect(JSON.parse(json.stdout)).toMatchObject({
      group_by: "model",
      groups: [{ group: "llama3.2:1b" }, {}],
    });
    const empty = await b9(env, "usage", "--since", "2026-04-01");
    expect(empty).toMatchObject({ code: 0, stdout: "" });
    expect(empty.stderr).toMatch(/^No inference requests from 2026-04-01 to /);
  });

  it("refuses a bad --since or --by before asking the gateway", async () => {
    let r = await b9(env, "usage", "--since", "yesterday");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--since takes a duration such as 30m, 24h or 7d, or an ISO time or date");
    r = await b9(env, "usage", "--by", "gpu");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Allowed choices are model, key, day, machine");
    expect(gateway.requests).toHaveLength(0);
  });

  it("works with an admin key too", async () => {
    const r = await b9({ ...env, BETA9_API_KEY: ADMIN_KEY }, "usage", "--by", "day");
    expect(r.code).toBe(0);
  });
});
