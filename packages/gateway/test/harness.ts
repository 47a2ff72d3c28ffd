import { statSync } from "node:fs";
import { createLogger } from "@beta9/http";
import { Store } from "@beta9/store";
import { type DIALECTS, tempDir } from "@beta9/test-utils";
import { buildGateway, type Gateway } from "../src/app.ts";
import { type GatewayConfig, gatewayConfig } from "../src/config.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

export interface Harness {
  gw: Gateway;
  admin: string;
  call(
    method: string,
    url: string,
    opts?: { body?: unknown; key?: string | null; raw?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: Json }>;
}

/** An in-process gateway on a fresh store of the given dialect; requests go through inject(). */
export async function harness(
  dialect: (typeof DIALECTS)[number],
  over: Partial<GatewayConfig> = {},
): Promise<Harness> {
  const dataDir = tempDir("b9-gwt-");
  const store = await Store.open(dialect.config());
  const log = createLogger({ name: "test", level: "silent", pretty: false });
  const gw = await buildGateway(gatewayConfig({ dataDir, ...over }), { store, log });
  const admin = gw.adminKey!;
  if ((statSync(`${dataDir}/admin-key`).mode & 0o777) !== 0o600) throw new Error("admin-key is not 0600");
  return {
    gw,
    admin,
    async call(method, url, opts = {}) {
      const key = opts.key === undefined ? admin : opts.key;
      const res = await gw.app.inject({
        method: method as "GET",
        url,
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(opts.body !== undefined || opts.raw !== undefined
            ? { "content-type": "application/json" }
            : {}),
          ...opts.headers,
        },
        payload: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
      });
      return { status: res.statusCode, body: res.body ? safeJson(res.body) : undefined };
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export const hardware = {
  os: "linux",
  arch: "x64",
  cpu_model: "AMD EPYC",
  cpu_cores: 2,
  memory_total_bytes: 24 * 2 ** 30,
  gpus: [],
};

export function joinBody(token: string, machineId: string) {
  return { token, machine_id: machineId, hostname: "host", agent_version: "0.1.0", hardware };
}
