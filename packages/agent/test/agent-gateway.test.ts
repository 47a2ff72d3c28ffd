import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type AgentProc,
  BIN,
  type GatewayProc,
  initAgent,
  Proc,
  postgresUrl,
  startAgent,
  startGateway,
  tempDir,
  waitFor,
} from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * The real b9gateway and b9agent processes on loopback: join, heartbeat, failures, restarts.
 */

const HARDWARE = {
  os: "linux",
  arch: "x64",
  cpu_model: "t",
  cpu_cores: 2,
  memory_total_bytes: 1e9,
  gpus: [],
};
type MachineView = { id: string; status: string; connection: string; last_heartbeat_at: string | null };
const procs: { stop(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop()));
});

async function gateway(opts: Parameters<typeof startGateway>[0] = {}): Promise<GatewayProc> {
  const gw = await startGateway(opts);
  procs.push(gw.proc);
  return gw;
}
async function agent(configPath: string, opts: Parameters<typeof startAgent>[1] = {}): Promise<AgentProc> {
  const a = await startAgent(configPath, opts);
  procs.push(a.proc);
  return a;
}
async function machine(gw: GatewayProc, id: string): Promise<MachineView> {
  return (await gw.api<MachineView>("GET", `/api/v1/machines/${id}`)).body;
}
function config(path: string) {
  return YAML.parse(readFileSync(path, "utf8"));
}

describe("agent and gateway, real processes", () => {
  it("joins, shows READY, serves an authenticated control API, and reuses its credential", async () => {
    const gw = await gateway();
    const path = await initAgent(gw, { name: "mac-studio-1" });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const cfg = config(path);
    expect(cfg.machine.token).toMatch(/^b9m_/);
    expect(cfg.machine.join_token).toBeUndefined();
    expect(cfg).toMatchObject({ gateway: { host: "127.0.0.1", port: gw.port }, pool: "external" });

    const a = await agent(path);
    const id = cfg.machine.id as string;
    await waitFor(async () => (await machine(gw, id)).status === "READY", { what: "READY" });
    const view = await machine(gw, id);
    expect(view).toMatchObject({ name: "mac-studio-1", pool: "external", connection: "channel" });

    // The control API: /health open, the rest needs the machine's token.
    expect((await fetch(`${a.controlUrl}/health`)).status).toBe(200);
    const anon = await fetch(`${a.controlUrl}/status`);
    expect(anon.status).toBe(401);
    expect(((await anon.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const status = await fetch(`${a.controlUrl}/status`, {
      headers: { authorization: `Bearer ${cfg.machine.token}` },
    });
    const body = (await status.json()) as Record<string, unknown>;
    for (const k of [
      "machine_id",
      "pool",
      "status",
      "uptime_seconds",
      "inference_status",
      "inference_port",
      "running_jobs",
      "total_jobs",
      "cpu_percent",
      "memory_percent",
      "gpu_count",
    ]) {
      expect(body).toHaveProperty(k);
    }
    expect(body).toMatchObject({
      machine_id: id,
      pool: "external",
      status: "READY",
      gateway_connected: true,
    });
    const metrics = await fetch(`${a.controlUrl}/metrics`, {
      headers: { authorization: `Bearer ${cfg.machine.token}` },
    });
    expect(await metrics.text()).toMatch(/beta9_agent_heartbeats_sent_total \d+/);
    const wrong = await fetch(`${a.controlUrl}/status`, { headers: { authorization: "Bearer b9m_wrong" } });
    expect(wrong.status).toBe(401);

    // A second start needs no token: the stored credential is enough, and no new machine appears.
    await a.proc.stop();
    await agent(path);
    await waitFor(async () => (await machine(gw, id)).status === "READY", { what: "READY again" });
    expect((await gw.api<{ machines: unknown[] }>("GET", "/api/v1/machines")).body.machines).toHaveLength(1);
    expect(gw.proc.logs().some((e) => JSON.stringify(e).includes(cfg.machine.token))).toBe(false);
  });

  it("turns a SIGKILLed agent UNHEALTHY at once and OFFLINE after the grace", async () => {
    const gw = await gateway({ args: ["--unhealthy-after", "2s", "--offline-after", "4s"] });
    const path = await initAgent(gw);
    const a = await agent(path);
    const id = config(path).machine.id as string;
    await waitFor(async () => (await machine(gw, id)).status === "READY");
    a.proc.child.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor(async () => (await machine(gw, id)).status === "UNHEALTHY", {
      what: "UNHEALTHY",
      timeoutMs: 15_000,
    });
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    await waitFor(async () => (await machine(gw, id)).status === "OFFLINE", {
      what: "OFFLINE",
      timeoutMs: 10_000,
    });
  });

  it("turns a frozen agent (no close, no beats) UNHEALTHY within 15 s, and READY when it thaws", async () => {
    const gw = await gateway();
    const path = await initAgent(gw);
    const a = await agent(path);
    const id = config(path).machine.id as string;
    await waitFor(async () => (await machine(gw, id)).status === "READY");
    a.proc.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    try {
      await waitFor(async () => (await machine(gw, id)).status === "UNHEALTHY", {
        what: "UNHEALTHY",
        timeoutMs: 16_000,
        intervalMs: 250,
      });
      expect(Date.now() - frozenAt).toBeLessThanOrEqual(15_500);
    } finally {
      a.proc.child.kill("SIGCONT");
    }
    await waitFor(async () => (await machine(gw, id)).status === "READY", {
      what: "READY after thaw",
      timeoutMs: 20_000,
    });
  }, 60_000);

  it("does not flap while heartbeats arrive on time", async () => {
    const gw = await gateway({ args: ["--heartbeat-interval", "1s", "--unhealthy-after", "2500ms"] });
    const path = await initAgent(gw);
    const cfg = config(path);
    cfg.heartbeat_interval_seconds = 1;
    writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
    await agent(path);
    const id = cfg.machine.id as string;
    await waitFor(async () => (await machine(gw, id)).status === "READY");
    const seen = new Set<string>();
    const until = Date.now() + 6_000;
    while (Date.now() < until) {
      seen.add((await machine(gw, id)).status);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...seen]).toEqual(["READY"]);
    expect(gw.proc.logs().filter((e) => e.to === "UNHEALTHY")).toHaveLength(0);
  });

  it("refuses another machine's credential with 403 and logs a security event", async () => {
    const gw = await gateway();
    const pathA = await initAgent(gw, { name: "a" });
    const pathB = await initAgent(gw, { name: "b" });
    const a = config(pathA);
    const b = config(pathB);
    b.machine.token = a.machine.token; // machine b presents a's credential
    writeFileSync(pathB, YAML.stringify(b), { mode: 0o600 });
    const res = await fetch(`${gw.url}/api/v1/agent/channel`, {
      headers: {
        connection: "Upgrade",
        upgrade: "beta9-agent-h2",
        authorization: `Bearer ${a.machine.token}`,
        "x-beta9-machine-id": b.machine.id,
      },
    }).catch(() => undefined);
    expect(res === undefined || res.status === 403).toBe(true);
    const agentB = new Proc([BIN.agent, "run", "--no-tui", "--listen", "127.0.0.1:0"], {
      B9AGENT_CONFIG: pathB,
    });
    procs.push(agentB);
    expect(await agentB.exited).toBe(1);
    expect(agentB.lines.join("\n")).toMatch(/bound to another machine/);
    const event = await gw.proc.waitForLog(
      (e) => e.event === "security" && e.kind === "credential_machine_mismatch",
    );
    expect(event.machine_id).toBe(b.machine.id);
    expect(JSON.stringify(gw.proc.logs())).not.toContain(a.machine.token);
  });

  it("a join token cannot take over an offline machine's id; the machine itself can init again", async () => {
    const gw = await gateway();
    expect((await gw.api("POST", "/api/v1/pools", { name: "other" })).status).toBe(201);
    const path = await initAgent(gw, { name: "victim" });
    const victim = config(path);
    const id = victim.machine.id as string;
    const a = await agent(path);
    await waitFor(async () => (await machine(gw, id)).status === "READY", { what: "READY" });
    await a.proc.stop();
    await waitFor(async () => (await machine(gw, id)).status !== "READY", { what: "not READY" });

    // Someone holding a join token for another pool joins under the offline machine's id.
    const token = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { pool: "other" })).body.token;
    const stolen = await fetch(`${gw.url}/api/v1/machines/join`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, machine_id: id, hostname: "x", agent_version: "x", hardware: HARDWARE }),
    });
    expect(stolen.status).toBe(409);
    const err = ((await stolen.json()) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe("machine_id_taken");
    expect(err.message).toMatch(/b9 machine remove/);
    expect((await machine(gw, id)) as unknown).toMatchObject({ pool: "external" });

    // The real machine's credential still works, and b9agent init on it (a new token) keeps its id.
    const again = await agent(path);
    await waitFor(async () => (await machine(gw, id)).status === "READY", { what: "READY again" });
    await again.proc.stop();
    await initAgent(gw, { configPath: path, name: "victim" });
    expect(config(path).machine.id).toBe(id);
    expect(config(path).machine.token).not.toBe(victim.machine.token);
  });

  it("a removed machine's agent stops and says how to join again, without retrying forever", async () => {
    const gw = await gateway();
    const path = await initAgent(gw);
    const id = config(path).machine.id as string;
    const a = await agent(path);
    await waitFor(async () => (await machine(gw, id)).status === "READY");
    expect((await gw.api("DELETE", `/api/v1/machines/${id}`)).status).toBe(204);
    expect(await a.proc.exited).toBe(1);
    expect(a.proc.lines.join("\n")).toMatch(/does not know machine.*b9agent init --gateway/s);
  });

  it("answers headers too large on the control API in the usual error shape", async () => {
    const gw = await gateway();
    const a = await agent(await initAgent(gw));
    const res = await fetch(`${a.controlUrl}/health`, { headers: { "x-big": "x".repeat(20_000) } });
    expect(res.status).toBe(431);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBeTruthy();
  });

  it("refuses a config file others can read, and says how to fix it", async () => {
    const gw = await gateway();
    const path = await initAgent(gw);
    chmodSync(path, 0o644);
    const p = new Proc([BIN.agent, "run", "--no-tui"], { B9AGENT_CONFIG: path });
    procs.push(p);
    expect(await p.exited).toBe(1);
    expect(p.lines.join("\n")).toContain(`chmod 600 ${path}`);
  });

  it("init --country is the owner's word: checked against the token's country, shown as declared, a bad one refused", async () => {
    const gw = await gateway();
    const token = async (body: Record<string, unknown>) =>
      (await gw.api<{ token: string }>("POST", "/api/v1/tokens", body)).body.token;
    const bare = await token({ uses: 2 });
    const inGermany = await token({ country: "DE" });
    const init = (t: string, country: string) => {
      const path = join(tempDir("b9-agent-"), "config.yaml");
      const proc = new Proc(
        [BIN.agent, "init", "--gateway", `127.0.0.1:${gw.port}`, "--token", t, "--country", country],
        { B9AGENT_CONFIG: path },
      );
      return { proc, path };
    };
    const bad = init(bare, "UK").proc;
    expect(await bad.exited).toBe(1);
    expect(bad.lines.join("\n")).toMatch(/two-letter ISO 3166 country code \(the United Kingdom is GB\)/);
    // The token binds Germany; the owner says the US: refused at init, with what to do.
    const liar = init(inGermany, "us").proc;
    expect(await liar.exited).toBe(1);
    expect(liar.lines.join("\n")).toMatch(
      /for machines in DE, and this machine says it is in US.*--country DE/s,
    );
    const declared = init(bare, "de");
    expect(await declared.proc.exited).toBe(0);
    const cfg = config(declared.path);
    expect(cfg.machine.country).toBe("DE");
    // Its own word is shown as declared; placement reads only the operator's (none yet).
    expect(
      (
        await gw.api<{ country: string | null; declared_country: string | null }>(
          "GET",
          `/api/v1/machines/${cfg.machine.id}`,
        )
      ).body,
    ).toMatchObject({ country: null, declared_country: "DE" });
    const honest = init(inGermany, "de");
    expect(await honest.proc.exited).toBe(0);
    expect(
      (await gw.api<{ country: string | null }>("GET", `/api/v1/machines/${config(honest.path).machine.id}`))
        .body.country,
    ).toBe("DE");
  });

  it("refuses init with a used-up token and says what to do", async () => {
    const gw = await gateway();
    const token = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { uses: 1 })).body.token;
    await initAgent(gw, { token });
    await expect(initAgent(gw, { token })).rejects.toThrow(/no uses left.*b9 token create/s);
  });

  for (const store of ["sqlite", "postgres"] as const) {
    it(`keeps machines, keys and tokens across a gateway restart, and agents reconnect by themselves (${store})`, async () => {
      const databaseUrl = store === "postgres" ? await freshDatabase() : undefined;
      let gw = await gateway({ databaseUrl });
      const dataDir = gw.dataDir;
      const port = gw.port;
      const key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ops", scopes: ["read"] }))
        .body.key;
      const token = (await gw.api<{ id: string }>("POST", "/api/v1/tokens", { uses: 5 })).body;
      const path = await initAgent(gw);
      const id = config(path).machine.id as string;
      const a = await agent(path);
      await waitFor(async () => (await machine(gw, id)).status === "READY");

      await gw.proc.stop();
      await a.proc.waitForLog(
        (e) => e.msg === "lost the gateway; reconnecting" || e.msg === "cannot reach the gateway; will retry",
      );
      gw = await gateway({ dataDir, port, databaseUrl });
      await waitFor(async () => (await machine(gw, id)).status === "READY", {
        what: "READY after restart",
        timeoutMs: 40_000,
      });
      expect((await gw.api("GET", "/api/v1/machines", undefined, key)).status).toBe(200);
      const tokens = (await gw.api<{ tokens: { id: string; uses_left: number }[] }>("GET", "/api/v1/tokens"))
        .body.tokens;
      expect(tokens.find((t) => t.id === token.id)?.uses_left).toBe(5);
      // It was the same agent process that came back, with its stored credential.
      expect(a.proc.child.exitCode).toBeNull();
      expect(config(path).machine.join_token).toBeUndefined();
    }, 90_000);
  }
});

let dbCounter = 0;
async function freshDatabase(): Promise<string> {
  const admin = postgresUrl();
  const name = `b9_restart_${process.pid}_${dbCounter++}`;
  const { default: pg } = await import("pg");
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS ${name}`);
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}
