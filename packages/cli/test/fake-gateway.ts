import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  ApiKeyView,
  DeploymentView,
  JoinTokenView,
  MachineView,
  PoolView,
  Scope,
  UsageGroupBy,
  UsageReport,
} from "@beta9/sdk";

/**
 * A stand-in for the gateway's management API over real HTTP: keeps machines, pools, tokens, keys
 * and deployments in memory, checks bearer keys and scopes, answers errors in the gateway's JSON shape, and
 * records every request. Enough for the CLI's tests; the real gateway has its own.
 */
export interface FakeGateway {
  url: string;
  requests: Array<{ method: string; url: string; headers: IncomingHttpHeaders; body: unknown }>;
  machines: MachineView[];
  pools: PoolView[];
  tokens: JoinTokenView[];
  keys: ApiKeyView[];
  deployments: DeploymentView[];
  close(): Promise<void>;
}

/** Bearer keys the fake accepts, and their scopes. */
export const ADMIN_KEY = "b9_admin_key";
export const READ_KEY = "b9_read_key";
const SCOPES: Record<string, Scope[]> = { [ADMIN_KEY]: ["admin"], [READ_KEY]: ["read"] };

interface Answer {
  status: number;
  body?: unknown;
}

const fail = (status: number, code: string, message: string): Answer => ({
  status,
  body: { error: { code, message } },
});

export async function startFakeGateway(
  now: () => number,
  seed: { machines?: MachineView[]; deployments?: DeploymentView[] } = {},
): Promise<FakeGateway> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const state = {
    machines: seed.machines ?? [],
    pools: [
      { name: "external", description: "", machines: 0, created_at: iso(now() - 86_400_000) },
      { name: "gpu", description: "the big ones", machines: 2, created_at: iso(now() - 3_600_000) },
    ] as PoolView[],
    tokens: [] as JoinTokenView[],
    keys: [] as ApiKeyView[],
    deployments: seed.deployments ?? [],
  };
  let counter = 0;

  const route = (method: string, path: string, query: URLSearchParams, body: unknown): Answer => {
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const [api, v1, noun, id, action] = parts;
    if (api !== "api" || v1 !== "v1") return fail(404, "not_found", `No route ${method} ${path}.`);
    const input = (body ?? {}) as Record<string, unknown>;

    if (noun === "tokens") {
      if (method === "POST" && !id) {
        const pool = typeof input.pool === "string" ? input.pool : "external";
        if (!state.pools.some((p) => p.name === pool))
          return fail(404, "pool_unknown", `There is no pool ${pool}.`);
        const ttl = typeof input.ttl_seconds === "number" ? input.ttl_seconds : 3600;
        const uses = typeof input.uses === "number" ? input.uses : 1;
        const view: JoinTokenView = {
          id: `tok_${++counter}`,
          pool,
          description: typeof input.description === "string" ? input.description : "",
          expires_at: iso(now() + ttl * 1000),
          uses_total: uses,
          uses_left: uses,
          revoked: false,
          created_at: iso(now()),
        };
        state.tokens.push(view);
        return { status: 201, body: { ...view, token: `b9j_secret_${counter}` } };
      }
      if (method === "GET" && !id) return { status: 200, body: { tokens: state.tokens } };
      if (method === "DELETE" && id) {
        const t = state.tokens.find((x) => x.id === id);
        if (!t) return fail(404, "not_found", `There is no join token ${id}.`);
        t.revoked = true;
        return { status: 200, body: t };
      }
    }

    if (noun === "machines") {
      if (method === "GET" && !id) {
        const machines = state.machines.filter(
          (m) =>
            (!query.get("pool") || m.pool === query.get("pool")) &&
            (!query.get("status") || m.status === query.get("status")),
        );
        return { status: 200, body: { machines, next: null } };
      }
      const m = state.machines.find((x) => x.id === id);
      if (!m) return fail(404, "not_found", `There is no machine ${id}.`);
      if (method === "GET" && !action) return { status: 200, body: m };
      if (method === "DELETE" && !action) {
        state.machines.splice(state.machines.indexOf(m), 1);
        return { status: 204 };
      }
      if (method === "POST" && action === "cordon") Object.assign(m, { cordoned: true, status: "CORDONED" });
      else if (method === "POST" && action === "uncordon")
        Object.assign(m, { cordoned: false, draining: false, status: "READY" });
      else if (method === "POST" && action === "drain")
        Object.assign(m, { cordoned: true, draining: true, status: "DRAINING" });
      else return fail(404, "not_found", `No route ${method} ${path}.`);
      return { status: 200, body: m };
    }

    if (noun === "pools" && !id) {
      if (method === "GET") return { status: 200, body: { pools: state.pools } };
      if (method === "POST") {
        const name = String(input.name);
        if (state.pools.some((p) => p.name === name))
          return fail(409, "conflict", `Pool ${name} exists already.`);
        const view: PoolView = {
          name,
          description: typeof input.description === "string" ? input.description : "",
          machines: 0,
          created_at: iso(now()),
        };
        state.pools.push(view);
        return { status: 201, body: view };
      }
    }

    if (noun === "keys") {
      if (method === "POST" && !id) {
        const n = ++counter;
        const view: ApiKeyView = {
          id: `key_${n}`,
          name: String(input.name),
          workspace: typeof input.workspace === "string" ? input.workspace : "default",
          scopes: input.scopes as Scope[],
          prefix: `b9_new${n}`,
          revoked: false,
          created_at: iso(now()),
          last_used_at: null,
          rpm_limit: typeof input.rpm_limit === "number" ? input.rpm_limit : null,
          tpm_limit: typeof input.tpm_limit === "number" ? input.tpm_limit : null,
        };
        state.keys.push(view);
        return { status: 201, body: { ...view, key: `b9_new${n}_full_secret` } };
      }
      if (method === "GET" && !id) return { status: 200, body: { keys: state.keys } };
      if (method === "DELETE" && id) {
        const k = state.keys.find((x) => x.id === id);
        if (!k) return fail(404, "not_found", `There is no API key ${id}.`);
        k.revoked = true;
        return { status: 200, body: k };
      }
    }
    if (noun === "deployments") {
      if (method === "POST" && !id) {
        const name = String(input.name);
        const pool = typeof input.pool === "string" ? input.pool : "external";
        if (!state.pools.some((p) => p.name === pool))
          return fail(404, "pool_unknown", `There is no pool ${pool}.`);
        if (state.deployments.some((d) => d.name === name))
          return fail(409, "conflict", `A deployment named ${name} exists already.`);
        const min = typeof input.min_replicas === "number" ? input.min_replicas : 0;
        const max = typeof input.max_replicas === "number" ? input.max_replicas : Math.max(1, min);
        if (max < min) return fail(400, "bad_request", "max_replicas is below min_replicas.");
        const or = <T>(key: string, fallback: T) => (input[key] === undefined ? fallback : (input[key] as T));
        const view: DeploymentView = {
          name,
          workspace: "default",
          source: String(input.source),
          sha256: or("sha256", null),
          engine: or("engine", null),
          min_replicas: min,
          max_replicas: max,
          idle_seconds: or("idle_seconds", 300),
          pool,
          gpu: or("gpu", "any"),
          min_vram_bytes: or("min_vram_bytes", null),
          countries: or("countries", []),
          region: or("region", null),
          prefer: or("prefer", null),
          context_size: or("context_size", null),
          created_at: iso(now()),
        };
        state.deployments.push(view);
        return { status: 201, body: view };
      }
      if (method === "GET" && !id) return { status: 200, body: { deployments: state.deployments } };
      const d = state.deployments.find((x) => x.name === id);
      if (!d || action) return fail(404, "not_found", `There is no deployment ${id}.`);
      if (method === "GET") return { status: 200, body: d };
      if (method === "DELETE") {
        state.deployments.splice(state.deployments.indexOf(d), 1);
        return { status: 204 };
      }
    }
    if (noun === "usage" && method === "GET" && !id) {
      const groupBy = (query.get("group_by") ?? "model") as UsageGroupBy;
      const until = query.get("until") ?? iso(now());
      const since = query.get("since") ?? iso(Date.parse(until) - 86_400_000);
      if (Number.isNaN(Date.parse(since))) return fail(400, "bad_request", "`since` is not a time.");
      const stats = (requests: number, errors: number, p50: number, p95: number) => ({
        requests,
        prompt_tokens: requests * 20,
        completion_tokens: requests * 8,
        errors,
        p50_latency_ms: p50,
        p95_latency_ms: p95,
      });
      const groups: UsageReport["groups"] =
        since > iso(now())
          ? []
          : groupBy === "key"
            ? [
                { group: "key_1", key_name: "ci", ...stats(12, 0, 300, 1200) },
                { group: "key_9", key_name: null, ...stats(1, 1, 5, 5) },
              ]
            : groupBy === "day"
              ? [{ group: "2026-03-01", ...stats(13, 1, 250, 12_500) }]
              : [
                  { group: "llama3.2:1b", ...stats(10, 1, 250, 980) },
                  { group: "smollm2", ...stats(3, 0, 40, 60) },
                ];
      return { status: 200, body: { since, until, group_by: groupBy, workspace: "default", groups } };
    }
    return fail(404, "not_found", `No route ${method} ${path}.`);
  };

  const requests: FakeGateway["requests"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const body: unknown = text ? JSON.parse(text) : undefined;
      const method = req.method ?? "GET";
      requests.push({ method, url: req.url ?? "", headers: req.headers, body });
      const url = new URL(req.url ?? "/", "http://fake");

      let answer: Answer;
      if (url.pathname === "/health") {
        answer = { status: 200, body: { status: "ok", version: "9.9.9" } };
      } else {
        const key = req.headers.authorization?.replace(/^Bearer /, "") ?? "";
        const scopes = SCOPES[key];
        const needed: Scope[] = method === "GET" ? ["read", "admin"] : ["admin"];
        if (!scopes) answer = fail(401, "api_key_invalid", "The API key is not valid.");
        else if (!scopes.some((s) => needed.includes(s))) {
          answer = fail(403, "scope_missing", `This needs an API key with scope ${needed.join(" or ")}.`);
        } else answer = route(method, url.pathname, url.searchParams, body);
      }
      res.writeHead(answer.status, answer.body === undefined ? {} : { "content-type": "application/json" });
      res.end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    ...state,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port on which nothing listens: bound once, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
