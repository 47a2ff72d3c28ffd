import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Beta9Client, UntrustedCertificateError } from "@beta9/sdk";
import {
  type AgentProc,
  allowTestModel,
  BIN,
  type GatewayProc,
  initAgent,
  makeCertificates,
  Proc,
  startAgent,
  startGateway,
  type TestCertificates,
  tempDir,
  testModelPath,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * b9gateway serving HTTPS itself (--tls-cert, --tls-key) with a certificate from a private CA made by
 * the real openssl: a real agent joins and keeps its channel (HTTP/2 over the TLS socket it upgraded),
 * a model answers through it, and the SDK and the CLI trust the gateway only when given the CA.
 */

let certs: TestCertificates;
let gw: GatewayProc;
let admin: Beta9Client;

beforeAll(async () => {
  certs = makeCertificates();
  gw = await startGateway({
    args: ["--tls-cert", certs.certFile, "--tls-key", certs.keyFile, "--heartbeat-interval", "1s"],
  });
  admin = new Beta9Client({ baseUrl: gw.url, apiKey: gw.adminKey, caFile: certs.caFile });
}, 60_000);

afterAll(async () => {
  await gw?.proc.stop("SIGKILL");
});

async function joinToken(): Promise<string> {
  const { token } = await admin.tokens.create({ pool: "external" });
  if (!token) throw new Error("the gateway created a join token without showing it");
  return token;
}

describe("gateway with its own TLS", () => {
  it("listens on https and refuses nothing it should serve", async () => {
    expect(gw.listenUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect((await admin.health()).status).toBe("ok");
  });

  it("an agent given the CA (b9agent init --ca-file) joins, stays connected and serves a model over the channel", async () => {
    const configPath = await initAgent(gw, {
      name: "tls-worker",
      token: await joinToken(),
      args: ["--ca-file", certs.caFile],
    });
    const cfg = YAML.parse(readFileSync(configPath, "utf8")) as {
      gateway: { tls: boolean; ca_file: string };
    };
    expect(cfg.gateway).toMatchObject({ tls: true, ca_file: certs.caFile });
    const { token, id } = allowTestModel(configPath).machine;
    let agent: AgentProc | undefined;
    try {
      agent = await startAgent(configPath);
      const control = (path: string, body: unknown) =>
        fetch(agent!.controlUrl + path, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      // Heartbeats flow on the HTTP/2 stream over TLS: several in a row, on one channel.
      let first: string | null = null;
      await waitFor(
        async () => {
          const m = await admin.machines.get(id);
          first ??= m.last_heartbeat_at;
          return m.status === "READY" && m.last_heartbeat_at !== first && first !== null;
        },
        { what: "heartbeats over the TLS channel", proc: agent.proc, timeoutMs: 20_000 },
      );
      expect(agent.proc.logs().filter((e) => e.msg === "connected to gateway")).toHaveLength(1);
      expect(agent.proc.logs().some((e) => e.msg === "lost the gateway; reconnecting")).toBe(false);

      expect((await control("/inference/pull", { model: "smollm2", source: testModelPath() })).status).toBe(
        201,
      );
      expect((await control("/inference/start", { model: "smollm2", context_size: 2048 })).status).toBe(200);
      await waitFor(
        async () =>
          (await admin.machines.get(id)).inference?.models.some(
            (m) => m.name === "smollm2" && m.state === "ready",
          ) ?? false,
        { what: "the gateway to see smollm2 ready", proc: agent.proc, timeoutMs: 60_000 },
      );
      // The gateway's request travels to the agent inside the channel, HTTP/2 over TLS.
      const answer = await admin.inference.chat({
        model: "smollm2",
        messages: [{ role: "user", content: "Say hello." }],
        maxTokens: 8,
      });
      expect(answer.content.length).toBeGreaterThan(0);
    } finally {
      await agent?.proc.stop();
    }
  }, 120_000);

  it("b9agent init without the CA refuses the gateway's certificate in a sentence that says what to pass", async () => {
    const init = new Proc(
      [BIN.agent, "init", "--gateway", gw.listenUrl, "--token", await joinToken(), "--name", "no-ca"],
      { B9AGENT_CONFIG: `${tempDir("b9-agent-")}/config.yaml` },
    );
    expect(await init.exited).toBe(1);
    const out = init.lines.join("\n");
    expect(out).toContain("the gateway's certificate is not trusted");
    expect(out).toContain("--ca-file");
    expect(out).not.toContain("fetch failed");
  });

  it("the SDK refuses the certificate without caFile, naming the option", async () => {
    const plain = new Beta9Client({ baseUrl: gw.url, apiKey: gw.adminKey });
    const err = await plain.pools.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedCertificateError);
    expect((err as Error).message).toContain("is not trusted");
    expect((err as Error).message).toContain("caFile");
  });

  it("the CLI trusts the gateway with BETA9_CA_FILE and says what to pass without it", async () => {
    const b9 = async (env: NodeJS.ProcessEnv) => {
      const p = new Proc([BIN.cli, "pool", "list", "--json"], {
        BETA9_GATEWAY: gw.url,
        BETA9_API_KEY: gw.adminKey,
        BETA9_CLI_CONFIG: `${tempDir("b9-cli-")}/cli.json`,
        ...env,
      });
      return { code: await p.exited, out: p.lines.join("\n") };
    };
    const trusted = await b9({ BETA9_CA_FILE: certs.caFile });
    expect(trusted.code).toBe(0);
    expect(trusted.out).toContain("external");
    const refused = await b9({});
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain("is not trusted");
    expect(refused.out).toContain("--ca-file");
    // b9 login --ca-file keeps the CA with the gateway and key, for the commands after it.
    const config = `${tempDir("b9-cli-")}/cli.json`;
    const login = new Proc(
      [BIN.cli, "login", "--gateway", gw.url, "--api-key", gw.adminKey, "--ca-file", certs.caFile],
      { BETA9_CLI_CONFIG: config },
    );
    expect(await login.exited).toBe(0);
    const after = new Proc([BIN.cli, "pool", "list", "--json"], { BETA9_CLI_CONFIG: config });
    expect(await after.exited).toBe(0);
    expect(after.lines.join("\n")).toContain("external");
  });

  it("b9gateway refuses a key that is not the certificate's, saying which flags", async () => {
    const other = makeCertificates();
    const proc = new Proc(
      [
        BIN.gateway,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        tempDir("b9-gw-"),
        "--tls-cert",
        certs.certFile,
        "--tls-key",
        other.keyFile,
      ],
      {},
    );
    expect(await proc.exited).toBe(1);
    expect(proc.lines.join("\n")).toContain("are not a PEM certificate and its own key");
  });

  it("the Python SDK trusts the gateway with ca_file and says what to pass without it", () => {
    const out = execFileSync(
      testPython(),
      [resolve(import.meta.dirname, "python", "tls_client.py"), gw.url, certs.caFile],
      { encoding: "utf8", env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", BETA9_CA_FILE: "" } },
    );
    const seen = JSON.parse(out.trim().split("\n").at(-1) ?? "") as {
      with_ca_file: string;
      without: { code: string; message: string } | null;
    };
    expect(seen.with_ca_file).toBe("ok");
    expect(seen.without?.code).toBe("certificate_untrusted");
    expect(seen.without?.message).toContain("is not trusted");
    expect(seen.without?.message).toContain("ca_file=");
  });
});

describe("gateway without TLS", () => {
  it("warns at start when it listens beyond loopback, and not on 127.0.0.1", async () => {
    const open = await startGateway({ host: "0.0.0.0" });
    try {
      const warning = await open.proc.waitForLog((e) => String(e.msg).includes("without TLS"));
      expect(warning.level).toBe(40);
      expect(String(warning.msg)).toContain("--tls-cert");
    } finally {
      await open.proc.stop("SIGKILL");
    }
    const local = await startGateway();
    try {
      expect(local.proc.logs().some((e) => String(e.msg).includes("without TLS"))).toBe(false);
    } finally {
      await local.proc.stop("SIGKILL");
    }
  });
});
