import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ADMIN_KEY, type FakeGateway, startFakeGateway } from "./fake-gateway.ts";
import { b9, NOW } from "./harness.ts";

let gateway: FakeGateway;
let env: Record<string, string>;
beforeEach(async () => {
  gateway = await startFakeGateway(() => NOW);
  env = {
    BETA9_GATEWAY: gateway.url,
    BETA9_API_KEY: ADMIN_KEY,
    BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json",
  };
});
afterEach(() => gateway.close());

describe("b9 token", () => {
  it("create parses --ttl and --uses, prints the token once and the b9agent init line", async () => {
    const r = await b9(env, "token", "create", "--pool", "gpu", "--ttl", "15m", "--uses", "3");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(gateway.requests[0]).toMatchObject({
      method: "POST",
      url: "/api/v1/tokens",
      body: { pool: "gpu", ttl_seconds: 900, uses: 3 },
    });
    const port = new URL(gateway.url).port;
    expect(r.stdout).toBe(
      [
        "Join token for pool gpu (expires in 15m, for 3 machines):",
        "",
        "  b9j_secret_1",
        "",
        "It is shown only this once. On the machine to add, run:",
        "",
        `  b9agent init --gateway 127.0.0.1:${port} --token b9j_secret_1`,
        "",
        "(127.0.0.1 is this computer; use an address the new machine can reach.)",
        "",
      ].join("\n"),
    );
  });

  it.each([
    ["30s", 30],
    ["1h", 3600],
    ["7d", 604_800],
    ["1h30m", 5400],
  ])("create --ttl %s sends %i seconds", async (ttl, seconds) => {
    await b9(env, "token", "create", "--ttl", ttl);
    expect(gateway.requests[0]?.body).toEqual({ ttl_seconds: seconds });
  });

  it("create refuses a bad --ttl or --uses before calling the gateway", async () => {
    for (const args of [
      ["--ttl", "10x"],
      ["--ttl", "31d"],
      ["--ttl", "0s"],
      ["--uses", "0"],
      ["--uses", "two"],
    ]) {
      const r = await b9(env, "token", "create", ...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: option '--(ttl|uses) <\w+>' argument '.*' is invalid\./);
    }
    expect(gateway.requests).toHaveLength(0);
  });

  it("create --json prints the gateway's answer, token included", async () => {
    const r = await b9(env, "token", "create", "--json");
    expect(JSON.parse(r.stdout)).toMatchObject({ id: "tok_1", pool: "external", token: "b9j_secret_1" });
  });

  it("create into an unknown pool says how to see or make pools", async () => {
    const r = await b9(env, "token", "create", "--pool", "nope");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: There is no pool nope.\nsee the pools with b9 pool list, or make one with b9 pool create NAME\n",
    });
  });

  it("list shows state, uses and expiry; revoke revokes", async () => {
    await b9(
      env,
      "token",
      "create",
      "--pool",
      "gpu",
      "--ttl",
      "1h",
      "--uses",
      "2",
      "--description",
      "rack 3",
    );
    await b9(env, "token", "create");
    const revoked = await b9(env, "token", "revoke", "tok_2");
    expect(revoked.stdout).toBe("Join token tok_2 (pool external) revoked.\n");
    const r = await b9(env, "token", "list");
    expect(r.stdout).toBe(
      [
        "ID      POOL       STATE     USES LEFT   EXPIRES   CREATED   DESCRIPTION",
        "tok_1   gpu        active    2/2         in 1h     0s ago    rack 3",
        "tok_2   external   revoked   1/1         in 1h     0s ago    -",
        "",
      ].join("\n"),
    );
    const json = await b9(env, "token", "list", "--json");
    expect(JSON.parse(json.stdout).tokens).toHaveLength(2);
    expect(JSON.parse(json.stdout).tokens[0].token).toBeUndefined();
  });
});

describe("b9 key", () => {
  it("create sends name and scopes and prints the key once", async () => {
    const r = await b9(env, "key", "create", "ci", "--scopes", "admin,inference");
    expect(r.code).toBe(0);
    expect(gateway.requests[0]).toMatchObject({
      method: "POST",
      url: "/api/v1/keys",
      body: { name: "ci", scopes: ["admin", "inference"] },
    });
    expect(r.stdout).toBe(
      [
        "API key ci created (scopes admin, inference; workspace default):",
        "",
        "  b9_new1_full_secret",
        "",
        "It is shown only this once; store it now, e.g. as BETA9_API_KEY.",
        "",
      ].join("\n"),
    );
  });

  it("create refuses an unknown scope and requires --scopes", async () => {
    let r = await b9(env, "key", "create", "ci", "--scopes", "admin,root");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown scope "root"; choose from admin, inference, read, jobs');
    r = await b9(env, "key", "create", "ci");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("required option '--scopes <list>' not specified");
    expect(gateway.requests).toHaveLength(0);
  });

  it("create sends --rpm and --tpm as the key's limits and says so", async () => {
    const r = await b9(
      env,
      "key",
      "create",
      "app",
      "--scopes",
      "inference",
      "--rpm",
      "60",
      "--tpm",
      "100000",
    );
    expect(r.code).toBe(0);
    expect(gateway.requests[0]).toMatchObject({
      body: { name: "app", scopes: ["inference"], rpm_limit: 60, tpm_limit: 100_000 },
    });
    expect(r.stdout.split("\n")[0]).toBe(
      "API key app created (scopes inference; workspace default; limits 60 rpm, 100000 tpm):",
    );
    await b9(env, "key", "create", "batch", "--scopes", "inference", "--tpm", "5000");
    const list = await b9(env, "key", "list");
    expect(list.stdout.split("\n").slice(1, 3)).toEqual([
      "key_1   app     default     inference   60 rpm, 100000 tpm   b9_new1   active   0s ago    never",
      "key_2   batch   default     inference   5000 tpm             b9_new2   active   0s ago    never",
    ]);
    expect((await b9(env, "key", "create", "x", "--scopes", "read")).stdout).toContain("workspace default):");
    expect(gateway.requests[3]?.body).toEqual({ name: "x", scopes: ["read"] });
  });

  it("create refuses a limit that is not a whole number of at least 1", async () => {
    for (const bad of ["0", "-5", "1.5", "lots"]) {
      const r = await b9(env, "key", "create", "ci", "--scopes", "read", "--rpm", bad);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("--rpm takes a whole number of at least 1");
    }
    expect(gateway.requests).toHaveLength(0);
  });

  it("list and revoke", async () => {
    await b9(env, "key", "create", "ci", "--scopes", "read", "--workspace", "team");
    const revoke = await b9(env, "key", "revoke", "key_1", "--json");
    expect(JSON.parse(revoke.stdout)).toMatchObject({ id: "key_1", revoked: true });
    expect(gateway.requests[1]).toMatchObject({ method: "DELETE", url: "/api/v1/keys/key_1" });
    const r = await b9(env, "key", "list");
    expect(r.stdout).toBe(
      [
        "ID      NAME   WORKSPACE   SCOPES   LIMITS   PREFIX    STATE     CREATED   LAST USED",
        "key_1   ci     team        read     -        b9_new1   revoked   0s ago    never",
        "",
      ].join("\n"),
    );
  });
});

describe("b9 pool", () => {
  it("list prints pools; create makes one", async () => {
    const created = await b9(env, "pool", "create", "eu-west", "--description", "EU only");
    expect(created.stdout).toBe("Pool eu-west created. Add machines with b9 token create --pool eu-west.\n");
    expect(gateway.requests[0]).toMatchObject({
      method: "POST",
      body: { name: "eu-west", description: "EU only" },
    });
    const r = await b9(env, "pool", "list");
    expect(r.stdout).toBe(
      [
        "NAME       MACHINES   CREATED   DESCRIPTION",
        "external   0          1d ago    -",
        "gpu        2          1h ago    the big ones",
        "eu-west    0          0s ago    EU only",
        "",
      ].join("\n"),
    );
    const json = await b9(env, "pool", "list", "--json");
    expect(JSON.parse(json.stdout).pools.map((p: { name: string }) => p.name)).toEqual([
      "external",
      "gpu",
      "eu-west",
    ]);
  });

  it("create of an existing pool prints the gateway's message", async () => {
    const r = await b9(env, "pool", "create", "gpu");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: Pool gpu exists already.\nsee them all with b9 pool list\n",
    });
  });
});
