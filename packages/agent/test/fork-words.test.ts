import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  BIN,
  type GatewayProc,
  initAgent,
  makeCertificates,
  Proc,
  startAgent,
  startGateway,
  tempDir,
  waitFor,
} from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * What users of the fork's Go agent type, on the real b9agent and b9gateway processes: each word is
 * accepted, or refused with a sentence naming the new spelling, and a failed init writes nothing.
 */

const procs: { stop(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});

async function gateway(opts: Parameters<typeof startGateway>[0] = {}): Promise<GatewayProc> {
  const gw = await startGateway(opts);
  procs.push(gw.proc);
  return gw;
}
/** Run b9agent (or the b9 CLI) with `args` to its end; its exit code and everything it printed. */
function b9agent(args: string[], env: NodeJS.ProcessEnv) {
  return runToEnd([BIN.agent, ...args], env);
}
function b9run(args: string[], env: NodeJS.ProcessEnv) {
  return runToEnd([BIN.cli, ...args], env);
}
async function runToEnd(
  argv: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  const p = new Proc(argv, env);
  procs.push(p);
  const code = await p.exited;
  return { code, out: p.lines.join("\n") };
}
async function joinToken(gw: GatewayProc, pool = "external"): Promise<string> {
  return (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { pool })).body.token;
}
const freshConfig = () => join(tempDir("b9-agent-"), "config.yaml");

describe("the fork's b9agent words", () => {
  it("`b9agent version` prints the version", async () => {
    const { code, out } = await b9agent(["version"], {});
    expect(code).toBe(0);
    expect(out).toMatch(/^b9agent version \d+\.\d+\.\d+/);
  });

  it("`b9agent config` prints the config with its credential hidden", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "studio" });
    const cfg = YAML.parse(readFileSync(path, "utf8"));
    const { code, out } = await b9agent(["config"], { B9AGENT_CONFIG: path });
    expect(code).toBe(0);
    expect(out).toContain(cfg.machine.id);
    expect(out).toContain(`port: ${gw.port}`);
    expect(out).toContain("b9m_… (hidden)");
    expect(out).not.toContain(cfg.machine.token);
  });

  it("`b9agent --tui=false --debug` runs without the dashboard and logs debug lines", async () => {
    const gw = await gateway();
    const path = await initAgent(gw);
    const a = new Proc([BIN.agent, "--tui=false", "--debug", "--listen", "127.0.0.1:0"], {
      B9AGENT_CONFIG: path,
      BETA9_LOG_LEVEL: "info",
    });
    procs.push(a);
    await a.waitForLog((e) => e.msg === "connected to gateway");
    expect((await a.waitForLog((e) => e.level === 20)).msg).toBe("loaded the agent config");
  });

  it("`init --gateway HOST --port N` joins the gateway at port N", async () => {
    const gw = await gateway();
    const path = freshConfig();
    const { code, out } = await b9agent(
      ["init", "--gateway", "127.0.0.1", "--port", String(gw.port), "--token", await joinToken(gw)],
      { B9AGENT_CONFIG: path },
    );
    expect(code, out).toBe(0);
    expect(YAML.parse(readFileSync(path, "utf8")).gateway).toMatchObject({
      host: "127.0.0.1",
      port: gw.port,
    });
  });

  it("init against a stopped gateway exits 1, says what to check, and writes nothing", async () => {
    const gw = await gateway();
    const token = await joinToken(gw);
    await gw.proc.stop();
    const path = freshConfig();
    const { code, out } = await b9agent(["init", "--gateway", `127.0.0.1:${gw.port}`, "--token", token], {
      B9AGENT_CONFIG: path,
    });
    expect(code).toBe(1);
    expect(out).toContain(`cannot reach the gateway at http://127.0.0.1:${gw.port}`);
    expect(out).toContain("was not written");
    expect(out).toContain("b9gateway runs there");
    expect(out).not.toContain("will join");
    expect(existsSync(path)).toBe(false);
  });

  it("init --pool gpu with a token for another pool names both pools and writes nothing", async () => {
    const gw = await gateway();
    const path = freshConfig();
    const { code, out } = await b9agent(
      ["init", "--gateway", `127.0.0.1:${gw.port}`, "--token", await joinToken(gw), "--pool", "gpu"],
      { B9AGENT_CONFIG: path },
    );
    expect(code).toBe(1);
    expect(out).toContain("this join token joins pool external, not gpu");
    expect(existsSync(path)).toBe(false);
  });

  it("a join token where the machine credential goes says so, with no security event", async () => {
    const gw = await gateway();
    const path = await initAgent(gw);
    const cfg = YAML.parse(readFileSync(path, "utf8"));
    cfg.machine.token = await joinToken(gw); // the fork's config called both secrets "token"
    writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
    const { code, out } = await b9agent(["run", "--no-tui", "--listen", "127.0.0.1:0"], {
      B9AGENT_CONFIG: path,
    });
    expect(code).toBe(1);
    expect(out).toContain(`this is a join token (b9j_…), not machine ${cfg.machine.id}'s credential`);
    expect(out).toContain("b9agent init --token");
    expect(out).not.toContain("bound to another machine");
    expect(gw.proc.logs().some((e) => e.event === "security")).toBe(false);
    expect(JSON.stringify(gw.proc.logs())).not.toContain(cfg.machine.token);
  });
});

describe("an agent of a gateway that serves TLS itself", () => {
  async function tlsAgent() {
    const certs = makeCertificates();
    const gw = await gateway({ args: ["--tls-cert", certs.certFile, "--tls-key", certs.keyFile] });
    // The real b9 CLI trusts the private CA (the test's own fetch does not).
    const b9 = async (...args: string[]) => {
      const { code, out } = await b9run(args, {
        BETA9_GATEWAY: gw.url,
        BETA9_API_KEY: gw.adminKey,
        BETA9_CA_FILE: certs.caFile,
        BETA9_CLI_CONFIG: join(tempDir("b9-cli-"), "cli.json"),
      });
      if (code !== 0) throw new Error(`b9 ${args.join(" ")} failed:\n${out}`);
      return out;
    };
    const token = async () =>
      JSON.parse(await b9("token", "create", "--pool", "external", "--json")).token as string;
    const path = await initAgent(gw, { token: await token(), args: ["--ca-file", certs.caFile] });
    return { gw, path, cfg: YAML.parse(readFileSync(path, "utf8")), b9, token };
  }

  it("says how to join again with the gateway's https:// address", async () => {
    const { gw, path, cfg, b9 } = await tlsAgent();
    const a = await startAgent(path);
    procs.push(a.proc);
    await b9("machine", "remove", cfg.machine.id);
    expect(await a.proc.exited).toBe(1);
    expect(a.proc.lines.join("\n")).toContain(`b9agent init --gateway https://127.0.0.1:${gw.port} --token`);
  });

  it("stops on a certificate it cannot verify with that sentence alone, instead of retrying the join", async () => {
    const { path, cfg, token } = await tlsAgent();
    // A join token not yet traded, and no CA to trust the gateway's certificate with.
    delete cfg.gateway.ca_file;
    cfg.machine.token = "";
    cfg.machine.join_token = await token();
    writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
    const p = new Proc([BIN.agent, "run", "--no-tui", "--listen", "127.0.0.1:0"], { B9AGENT_CONFIG: path });
    procs.push(p);
    await waitFor(() => p.child.exitCode !== null, { what: "the agent to stop", timeoutMs: 20_000, proc: p });
    expect(p.child.exitCode).toBe(1);
    const out = p.lines.join("\n");
    expect(out).toContain("the gateway's certificate is not trusted");
    expect(out).not.toContain("cannot reach the gateway");
  });
});
