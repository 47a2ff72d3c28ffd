import type {
  ApiKeyView,
  DeploymentView,
  JoinTokenView,
  MachineView,
  PoolView,
  UsageReport,
} from "@beta9/protocol";
import { afterEach, describe, expect, it } from "vitest";
import {
  ApiError,
  AuthenticationError,
  Beta9Client,
  ConnectionError,
  ConnectionTimeoutError,
  InternalServerError,
  NotFoundError,
  PermissionDeniedError,
} from "../src/index.ts";
import { closedPort, type RecordingServer, type Reply, startRecordingServer } from "./recording-server.ts";

const KEY = "b9_test_admin_key";

const machine: MachineView = {
  id: "a1b2c3d4",
  name: "gpu-box",
  pool: "gpu",
  status: "READY",
  hostname: "gpu-box.lan",
  agent_version: "0.1.0",
  country: "DE",
  connection: "channel",
  hardware: {
    os: "linux",
    arch: "x64",
    cpu_model: "EPYC",
    cpu_cores: 32,
    memory_total_bytes: 2 ** 37,
    gpus: [],
  },
  usage: null,
  inference: null,
  cordoned: false,
  draining: false,
  running_jobs: 0,
  joined_at: "2026-01-01T00:00:00.000Z",
  last_heartbeat_at: "2026-01-01T00:00:10.000Z",
};
const workspace = {
  id: "ws_1",
  name: "lab",
  operator: false,
  rpm_limit: null,
  tpm_limit: null,
  created_at: "2026-11-27T00:00:00.000Z",
};
const token: JoinTokenView = {
  id: "tok_1",
  pool: "gpu",
  description: "",
  expires_at: "2026-01-01T01:00:00.000Z",
  uses_total: 2,
  uses_left: 2,
  revoked: false,
  created_at: "2026-01-01T00:00:00.000Z",
  token: "b9j_secret",
};
const key: ApiKeyView = {
  id: "key_1",
  name: "ci",
  workspace: "default",
  scopes: ["admin", "inference"],
  prefix: "b9_abcd",
  revoked: false,
  created_at: "2026-01-01T00:00:00.000Z",
  last_used_at: null,
  rpm_limit: 60,
  tpm_limit: null,
  key: "b9_full_secret",
};
const pool: PoolView = {
  name: "gpu",
  description: "the big ones",
  machines: 1,
  created_at: "2026-01-01T00:00:00.000Z",
};

const deployment: DeploymentView = {
  name: "llama3.2:1b",
  workspace: "default",
  source: "ollama:llama3.2:1b",
  sha256: null,
  engine: "ollama",
  min_replicas: 0,
  max_replicas: 2,
  idle_seconds: 300,
  pool: "gpu",
  gpu: "nvidia",
  min_vram_bytes: 8_000_000_000,
  countries: ["DE", "FR"],
  region: "eu",
  prefer: null,
  context_size: 8192,
  created_at: "2026-01-01T00:00:00.000Z",
};

const usageReport: UsageReport = {
  since: "2026-01-01T00:00:00.000Z",
  until: "2026-01-02T00:00:00.000Z",
  group_by: "key",
  workspace: "default",
  groups: [
    {
      group: "key_1",
      key_name: "ci",
      requests: 3,
      prompt_tokens: 30,
      completion_tokens: 12,
      errors: 1,
      p50_latency_ms: 120,
      p95_latency_ms: 900,
    },
  ],
};

let server: RecordingServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(reply: Reply | ((url: string) => Reply | "hang")) {
  server = await startRecordingServer((req) => (typeof reply === "function" ? reply(req.url) : reply));
  return { server, client: new Beta9Client({ baseUrl: server.url, apiKey: KEY }) };
}

describe("requests", () => {
  // Each row: the call, the method and path the gateway must see, the body it must get, the answer.
  const cases: Array<{
    name: string;
    call: (c: Beta9Client) => Promise<unknown>;
    method: string;
    url: string;
    body?: unknown;
    reply: Reply;
  }> = [
    {
      name: "tokens.create",
      call: (c) => c.tokens.create({ pool: "gpu", ttl_seconds: 3600, uses: 2 }),
      method: "POST",
      url: "/api/v1/tokens",
      body: { pool: "gpu", ttl_seconds: 3600, uses: 2 },
      reply: { status: 201, json: token },
    },
    {
      name: "tokens.list",
      call: (c) => c.tokens.list(),
      method: "GET",
      url: "/api/v1/tokens",
      reply: { status: 200, json: { tokens: [token] } },
    },
    {
      name: "tokens.revoke",
      call: (c) => c.tokens.revoke("tok_1"),
      method: "DELETE",
      url: "/api/v1/tokens/tok_1",
      reply: { status: 200, json: { ...token, revoked: true } },
    },
    {
      name: "workspaces.create",
      call: (c) => c.workspaces.create({ name: "lab" }),
      method: "POST",
      url: "/api/v1/workspaces",
      body: { name: "lab" },
      reply: { status: 201, json: workspace },
    },
    {
      name: "keys.setLimits",
      call: (c) => c.keys.setLimits("key_1", { rpm_limit: 60, tpm_limit: null }),
      method: "POST",
      url: "/api/v1/keys/key_1/limits",
      body: { rpm_limit: 60, tpm_limit: null },
      reply: { status: 200, json: { ...key, rpm_limit: 60 } },
    },
    {
      name: "workspaces.setLimits",
      call: (c) => c.workspaces.setLimits("lab", { rpm_limit: 600 }),
      method: "POST",
      url: "/api/v1/workspaces/lab/limits",
      body: { rpm_limit: 600 },
      reply: { status: 200, json: { ...workspace, rpm_limit: 600 } },
    },
    {
      name: "workspaces.remove",
      call: (c) => c.workspaces.remove("lab"),
      method: "DELETE",
      url: "/api/v1/workspaces/lab",
      reply: { status: 200, json: { name: "lab", deployments_removed: 1, keys_removed: 2 } },
    },
    {
      name: "workspaces.list",
      call: (c) => c.workspaces.list(),
      method: "GET",
      url: "/api/v1/workspaces",
      reply: { status: 200, json: { workspaces: [workspace] } },
    },
    {
      name: "machines.list with filters",
      call: (c) => c.machines.list({ pool: "gpu", status: "READY" }),
      method: "GET",
      url: "/api/v1/machines?pool=gpu&status=READY",
      reply: { status: 200, json: { machines: [machine], next: null } },
    },
    {
      name: "machines.list without filters",
      call: (c) => c.machines.list(),
      method: "GET",
      url: "/api/v1/machines",
      reply: { status: 200, json: { machines: [], next: null } },
    },
    {
      name: "machines.get",
      call: (c) => c.machines.get("a1b2c3d4"),
      method: "GET",
      url: "/api/v1/machines/a1b2c3d4",
      reply: { status: 200, json: machine },
    },
    {
      name: "machines.cordon",
      call: (c) => c.machines.cordon("a1b2c3d4"),
      method: "POST",
      url: "/api/v1/machines/a1b2c3d4/cordon",
      reply: { status: 200, json: { ...machine, status: "CORDONED", cordoned: true } },
    },
    {
      name: "machines.uncordon",
      call: (c) => c.machines.uncordon("a1b2c3d4"),
      method: "POST",
      url: "/api/v1/machines/a1b2c3d4/uncordon",
      reply: { status: 200, json: machine },
    },
    {
      name: "machines.drain",
      call: (c) => c.machines.drain("a1b2c3d4"),
      method: "POST",
      url: "/api/v1/machines/a1b2c3d4/drain",
      reply: { status: 200, json: { ...machine, status: "DRAINING", draining: true } },
    },
    {
      name: "pools.list",
      call: (c) => c.pools.list(),
      method: "GET",
      url: "/api/v1/pools",
      reply: { status: 200, json: { pools: [pool] } },
    },
    {
      name: "pools.create",
      call: (c) => c.pools.create({ name: "gpu", description: "the big ones" }),
      method: "POST",
      url: "/api/v1/pools",
      body: { name: "gpu", description: "the big ones" },
      reply: { status: 201, json: pool },
    },
    {
      name: "keys.create",
      call: (c) => c.keys.create({ name: "ci", scopes: ["admin", "inference"] }),
      method: "POST",
      url: "/api/v1/keys",
      body: { name: "ci", scopes: ["admin", "inference"] },
      reply: { status: 201, json: key },
    },
    {
      name: "keys.list",
      call: (c) => c.keys.list(),
      method: "GET",
      url: "/api/v1/keys",
      reply: { status: 200, json: { keys: [key] } },
    },
    {
      name: "keys.revoke",
      call: (c) => c.keys.revoke("key_1"),
      method: "DELETE",
      url: "/api/v1/keys/key_1",
      reply: { status: 200, json: { ...key, revoked: true } },
    },
    {
      name: "deployments.create",
      call: (c) =>
        c.deployments.create({
          name: "llama3.2:1b",
          source: "ollama:llama3.2:1b",
          engine: "ollama",
          max_replicas: 2,
          pool: "gpu",
          gpu: "nvidia",
          min_vram_bytes: 8_000_000_000,
          countries: ["DE", "FR"],
          region: "eu",
          context_size: 8192,
        }),
      method: "POST",
      url: "/api/v1/deployments",
      body: {
        name: "llama3.2:1b",
        source: "ollama:llama3.2:1b",
        engine: "ollama",
        max_replicas: 2,
        pool: "gpu",
        gpu: "nvidia",
        min_vram_bytes: 8_000_000_000,
        countries: ["DE", "FR"],
        region: "eu",
        context_size: 8192,
      },
      reply: { status: 201, json: deployment },
    },
    {
      name: "deployments.list",
      call: (c) => c.deployments.list(),
      method: "GET",
      url: "/api/v1/deployments",
      reply: { status: 200, json: { deployments: [deployment] } },
    },
    {
      name: "deployments.get",
      call: (c) => c.deployments.get("llama3.2:1b"),
      method: "GET",
      url: "/api/v1/deployments/llama3.2%3A1b",
      reply: { status: 200, json: deployment },
    },
    {
      name: "keys.create with limits",
      call: (c) => c.keys.create({ name: "ci", scopes: ["inference"], rpm_limit: 60, tpm_limit: null }),
      method: "POST",
      url: "/api/v1/keys",
      body: { name: "ci", scopes: ["inference"], rpm_limit: 60, tpm_limit: null },
      reply: { status: 201, json: key },
    },
    {
      name: "usage.get",
      call: (c) =>
        c.usage.get({ since: new Date("2026-01-01T00:00:00.000Z"), until: "2026-01-02", group_by: "key" }),
      method: "GET",
      url: "/api/v1/usage?since=2026-01-01T00%3A00%3A00.000Z&until=2026-01-02&group_by=key",
      reply: { status: 200, json: usageReport },
    },
    {
      name: "usage.get with the defaults",
      call: (c) => c.usage.get(),
      method: "GET",
      url: "/api/v1/usage",
      reply: { status: 200, json: usageReport },
    },
    {
      name: "health",
      call: (c) => c.health(),
      method: "GET",
      url: "/health",
      reply: { status: 200, json: { status: "ok", version: "0.1.0" } },
    },
  ];

  for (const c of cases) {
    it(`${c.name} sends ${c.method} ${c.url} with the key and returns the gateway's answer`, async () => {
      const { server, client } = await serve(c.reply);
      const result = await c.call(client);
      expect(result).toEqual(c.reply.json);
      expect(server.requests).toHaveLength(1);
      const [req] = server.requests;
      expect(req?.method).toBe(c.method);
      expect(req?.url).toBe(c.url);
      expect(req?.headers.authorization).toBe(`Bearer ${KEY}`);
      if (c.body === undefined) {
        expect(req?.body).toBe("");
        expect(req?.headers["content-type"]).toBeUndefined();
      } else {
        expect(req?.headers["content-type"]).toBe("application/json");
        expect(JSON.parse(req?.body ?? "")).toEqual(c.body);
      }
    });
  }

  it("machines.remove sends DELETE and resolves to undefined on 204", async () => {
    const { server, client } = await serve({ status: 204 });
    await expect(client.machines.remove("a1b2c3d4")).resolves.toBeUndefined();
    expect(server.requests[0]?.method).toBe("DELETE");
    expect(server.requests[0]?.url).toBe("/api/v1/machines/a1b2c3d4");
  });

  it("deployments.remove sends DELETE with the name encoded and resolves to undefined on 204", async () => {
    const { server, client } = await serve({ status: 204 });
    await expect(client.deployments.remove("library/qwen2.5:7b")).resolves.toBeUndefined();
    expect(server.requests[0]).toMatchObject({
      method: "DELETE",
      url: "/api/v1/deployments/library%2Fqwen2.5%3A7b",
    });
  });

  it("deployments.get maps a 404 to NotFoundError and refuses '..' before sending", async () => {
    const { server, client } = await serve({
      status: 404,
      json: { error: { code: "not_found", message: "no deployment named x in this workspace" } },
    });
    await expect(client.deployments.get("x")).rejects.toSatisfy(
      (e) => e instanceof NotFoundError && e.code === "not_found",
    );
    await expect(client.deployments.remove("..")).rejects.toThrow(TypeError);
    expect(server.requests).toHaveLength(1);
  });

  it("URL-encodes ids so one id stays one path segment", async () => {
    const { server, client } = await serve({ status: 200, json: machine });
    await client.machines.get("a/b c?d");
    await client.machines.cordon("x#y");
    expect(server.requests.map((r) => r.url)).toEqual([
      "/api/v1/machines/a%2Fb%20c%3Fd",
      "/api/v1/machines/x%23y/cordon",
    ]);
  });

  it("refuses ids that URL parsing would turn into another route", async () => {
    const { server, client } = await serve({ status: 204 });
    await expect(client.machines.remove("..")).rejects.toThrow(TypeError);
    await expect(client.keys.revoke("")).rejects.toThrow(TypeError);
    expect(server.requests).toHaveLength(0);
  });

  it("sends no authorization header when no key is configured", async () => {
    server = await startRecordingServer(() => ({ status: 200, json: { status: "ok", version: "1" } }));
    await new Beta9Client({ baseUrl: server.url }).health();
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });

  it("accepts host:port without a scheme and a trailing slash", async () => {
    server = await startRecordingServer(() => ({ status: 200, json: { pools: [] } }));
    const client = new Beta9Client({ baseUrl: `${server.url.replace("http://", "")}/`, apiKey: KEY });
    expect(client.baseUrl).toBe(server.url);
    await client.pools.list();
    expect(server.requests[0]?.url).toBe("/api/v1/pools");
  });

  it("rejects a base URL that is not http(s)", () => {
    expect(() => new Beta9Client({ baseUrl: "ftp://example.com" })).toThrow(/http or https/);
    expect(() => new Beta9Client({ baseUrl: "" })).toThrow(/empty/);
  });

  it("uses an injected fetch instead of the global one", async () => {
    const seen: string[] = [];
    const fakeFetch: typeof fetch = async (input, init) => {
      seen.push(`${init?.method} ${String(input)} ${new Headers(init?.headers).get("authorization")}`);
      return new Response(JSON.stringify({ pools: [pool] }), { status: 200 });
    };
    const client = new Beta9Client({ baseUrl: "http://gateway.test:1994", apiKey: KEY, fetch: fakeFetch });
    await expect(client.pools.list()).resolves.toEqual({ pools: [pool] });
    expect(seen).toEqual([`GET http://gateway.test:1994/api/v1/pools Bearer ${KEY}`]);
  });
});

describe("errors", () => {
  it("maps a 401 body to AuthenticationError with the gateway's code and message", async () => {
    const { client } = await serve({
      status: 401,
      json: { error: { code: "api_key_invalid", message: "The API key is not valid." } },
    });
    const error = await client.machines.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      status: 401,
      code: "api_key_invalid",
      message: "The API key is not valid.",
    });
  });

  it("maps 403, 404 and 5xx to their families", async () => {
    const replies: Record<string, Reply> = {
      "/api/v1/keys": { status: 403, json: { error: { code: "scope_missing", message: "Needs admin." } } },
      "/api/v1/machines/nope": {
        status: 404,
        json: { error: { code: "not_found", message: "No machine nope." } },
      },
      "/api/v1/pools": {
        status: 503,
        json: { error: { code: "unavailable", message: "Busy." } },
        headers: { "retry-after": "7" },
      },
    };
    const { client } = await serve((url) => replies[url] ?? { status: 500 });
    await expect(client.keys.list()).rejects.toSatisfy(
      (e) => e instanceof PermissionDeniedError && e.code === "scope_missing",
    );
    await expect(client.machines.get("nope")).rejects.toSatisfy(
      (e) => e instanceof NotFoundError && e.message === "No machine nope.",
    );
    await expect(client.pools.list()).rejects.toSatisfy(
      (e) => e instanceof InternalServerError && e.status === 503 && e.retryAfterSeconds === 7,
    );
  });

  it("gives a code and a message when the error body is not the gateway's JSON (a proxy page)", async () => {
    const { client } = await serve({ status: 502, raw: "<html>Bad Gateway</html>" });
    const error = await client.pools.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InternalServerError);
    expect(error).toMatchObject({
      status: 502,
      code: "internal",
      message: "the gateway answered 502 Bad Gateway",
    });
  });

  it("says so when a successful answer is not JSON", async () => {
    const { client } = await serve({ status: 200, raw: "<html>hello</html>" });
    await expect(client.pools.list()).rejects.toMatchObject({ code: "invalid_response" });
  });

  it("turns connection refused into a ConnectionError that says what to check", async () => {
    const port = await closedPort();
    const client = new Beta9Client({ baseUrl: `http://127.0.0.1:${port}`, apiKey: KEY });
    const error = await client.machines.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ baseUrl: `http://127.0.0.1:${port}`, reason: "connection refused" });
    const message = (error as Error).message;
    expect(message).toContain(`http://127.0.0.1:${port}`);
    expect(message).toContain("check the gateway URL and that the gateway is running");
  });

  it("gives up after timeoutMs with a ConnectionTimeoutError", async () => {
    server = await startRecordingServer(() => "hang");
    const client = new Beta9Client({ baseUrl: server.url, apiKey: KEY, timeoutMs: 200 });
    const error = await client.pools.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionTimeoutError);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toContain("no answer within 200 ms");
  });

  it("rejects with the caller's abort reason, not an SDK error, when the caller cancels", async () => {
    server = await startRecordingServer(() => "hang");
    const client = new Beta9Client({ baseUrl: server.url, apiKey: KEY });
    const controller = new AbortController();
    const pending = client.pools.list({ signal: controller.signal });
    controller.abort();
    const error = await pending.catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(ConnectionError);
    expect((error as Error).name).toBe("AbortError");
  });
});

describe("paging", () => {
  it("machines.list follows `next` until the last page", async () => {
    const pages: Record<string, unknown> = {
      "": { machines: [{ id: "a" }, { id: "b" }], next: "b" },
      b: { machines: [{ id: "c" }], next: null },
    };
    const seen: string[] = [];
    const client = new Beta9Client({
      baseUrl: "http://gw.test",
      apiKey: "b9_k",
      fetch: async (input) => {
        const url = new URL(String(input));
        seen.push(url.search);
        return new Response(JSON.stringify(pages[url.searchParams.get("after") ?? ""]), {
          headers: { "content-type": "application/json" },
        });
      },
    });
    const all = await client.machines.list();
    expect(all.machines.map((m) => m.id)).toEqual(["a", "b", "c"]);
    expect(seen).toEqual(["", "?after=b"]);
  });
});
