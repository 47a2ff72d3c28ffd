import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { CHANNEL_PATH, CHANNEL_PROTOCOL, MACHINE_ID_HEADER } from "@beta9/protocol";
import {
  type AgentProc,
  type GatewayProc,
  initAgent,
  makeCertificates,
  type Nginx,
  startAgent,
  startGateway,
  startNginx,
  type TestCertificates,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * The gateway on 127.0.0.1 behind the real nginx (Debian's) terminating TLS, configured as the
 * README says. An agent with `tls: true` and the proxy's CA keeps its channel through nginx, and
 * security events name the client nginx saw, because the gateway was told to trust that proxy
 * (--trusted-proxy); a client that is not a listed proxy cannot choose its own address.
 */

let certs: TestCertificates;
let gw: GatewayProc;
let nginx: Nginx;
let agent: AgentProc;
let machine: { id: string; token: string };

beforeAll(async () => {
  certs = makeCertificates();
  gw = await startGateway({ args: ["--trusted-proxy", "127.0.0.1/32", "--heartbeat-interval", "1s"] });
  nginx = await startNginx({ upstream: gw.url, certs });
  const proxied = { ...gw, listenUrl: nginx.url };
  const configPath = await initAgent(proxied, { name: "behind-proxy", args: ["--ca-file", certs.caFile] });
  machine = (YAML.parse(readFileSync(configPath, "utf8")) as { machine: typeof machine }).machine;
  agent = await startAgent(configPath);
}, 60_000);

afterAll(async () => {
  await agent?.proc.stop();
  await nginx?.stop();
  await gw?.proc.stop("SIGKILL");
});

/** One request from a chosen loopback address (a distinct "client"), over https when the URL says so. */
function send(
  url: string,
  opts: { method: string; path: string; from: string; headers?: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  const target = new URL(opts.path, url);
  const mod = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(target, {
      method: opts.method,
      localAddress: opts.from,
      ca: readFileSync(certs.caFile),
      headers: opts.headers,
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** The remote address of the next credential_machine_mismatch event after `seen` earlier ones. */
async function mismatchRemote(seen: number): Promise<unknown> {
  const events = () => gw.proc.logs().filter((e) => e.kind === "credential_machine_mismatch");
  await waitFor(() => events().length > seen, { what: "a security event", proc: gw.proc });
  return events()[seen]?.remote;
}

describe("gateway behind a TLS-terminating nginx", () => {
  it("an agent with tls and the proxy's CA stays connected through nginx, heartbeating", async () => {
    let first: string | null | undefined;
    await waitFor(
      async () => {
        const m = (
          await gw.api<{ status: string; last_heartbeat_at: string | null }>(
            "GET",
            `/api/v1/machines/${machine.id}`,
          )
        ).body;
        first ??= m.last_heartbeat_at;
        return m.status === "READY" && first !== null && m.last_heartbeat_at !== first;
      },
      { what: "heartbeats through nginx", proc: agent.proc },
    );
    expect(agent.proc.logs().filter((e) => e.msg === "connected to gateway")).toHaveLength(1);
    expect(agent.proc.logs().some((e) => e.msg === "lost the gateway; reconnecting")).toBe(false);
  });

  it("security events name the client nginx saw (X-Forwarded-For from the listed proxy)", async () => {
    const before = gw.proc.logs().filter((e) => e.kind === "credential_machine_mismatch").length;
    // The agent channel's upgrade, with this machine's credential for another machine id.
    const upgrade = await send(nginx.url, {
      method: "GET",
      path: CHANNEL_PATH,
      from: "127.0.0.5",
      headers: {
        connection: "Upgrade",
        upgrade: CHANNEL_PROTOCOL,
        authorization: `Bearer ${machine.token}`,
        [MACHINE_ID_HEADER]: "someone-else",
      },
    });
    expect(upgrade.status).toBe(403);
    expect(await mismatchRemote(before)).toBe("127.0.0.5");
    // The fork's keepalive, an ordinary route.
    const keepalive = await send(nginx.url, {
      method: "POST",
      path: "/api/v1/machine/keepalive",
      from: "127.0.0.6",
      headers: { authorization: `Bearer ${machine.token}`, "content-type": "application/json" },
      body: JSON.stringify({ machine_id: "someone-else" }),
    });
    expect(keepalive.status).toBe(403);
    expect(await mismatchRemote(before + 1)).toBe("127.0.0.6");
  });

  it("a client that is not a listed proxy cannot name another address in X-Forwarded-For", async () => {
    const before = gw.proc.logs().filter((e) => e.kind === "credential_machine_mismatch").length;
    const direct = await send(gw.url, {
      method: "POST",
      path: "/api/v1/machine/keepalive",
      from: "127.0.0.7",
      headers: {
        authorization: `Bearer ${machine.token}`,
        "content-type": "application/json",
        "x-forwarded-for": "203.0.113.9",
      },
      body: JSON.stringify({ machine_id: "someone-else" }),
    });
    expect(direct.status).toBe(403);
    expect(await mismatchRemote(before)).toBe("127.0.0.7");
  });
});
