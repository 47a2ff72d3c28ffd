import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import {
  type AgentProc,
  BIN,
  ensureRootfs,
  type GatewayProc,
  initAgent,
  PODMAN_ROOTFS_DIR,
  pathWithout,
  podmanInstalled,
  startAgent,
  startGateway,
  testPodmanOptions,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { jobsClient } from "./jobs-client.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * Agents say which job runners their machine has; the gateway offers a job in a rootfs only to a
 * machine with podman, and while none has it the job waits saying so (in the API and `b9 job show`),
 * instead of being offered to each machine in turn and declined. Real agents: one on a PATH without
 * podman, as on a machine where it is not installed, and then one with it.
 */
let gw: GatewayProc;
let key: string;
const agents: AgentProc[] = [];
let rootfs = "/srv/rootfs";

const { submit, until } = jobsClient(
  () => gw,
  () => key,
);

/** An agent joined to the gateway, its config given jobs.rootfs_dirs and jobs.podman as this VM needs. */
async function agentWith(name: string, env: NodeJS.ProcessEnv): Promise<AgentProc> {
  const path = await initAgent(gw, { name });
  const cfg = YAML.parse(readFileSync(path, "utf8")) as { jobs?: unknown };
  cfg.jobs = { rootfs_dirs: [PODMAN_ROOTFS_DIR], podman: testPodmanOptions() };
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  const agent = await startAgent(path, { env: { B9AGENT_JOB_RUNNER: "native", ...env } });
  agents.push(agent);
  return agent;
}

beforeAll(async () => {
  if (podmanInstalled) rootfs = ensureRootfs();
  gw = await startGateway();
  key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body.key;
  await agentWith("no-podman", { PATH: pathWithout("podman") });
}, 600_000);

afterAll(async () => {
  for (const a of agents) await a.proc.stop();
  await gw?.proc.stop();
});

/** The b9 CLI's output, as a user with this key sees it. */
function b9(args: string[], apiKey: string): string {
  return execFileSync(process.execPath, [BIN.cli, ...args], {
    encoding: "utf8",
    env: {
      ...process.env,
      BETA9_GATEWAY: gw.url,
      BETA9_API_KEY: apiKey,
      BETA9_CLI_CONFIG: "/nonexistent/cli.json",
    },
  });
}

async function machine(name: string): Promise<Json> {
  const list = (await gw.api<{ machines: Json[] }>("GET", "/api/v1/machines")).body.machines;
  return list.find((m) => m.name === name);
}

describe("job runners", () => {
  it("an agent reports its runners with its heartbeat: the machine's view and b9 machine show have them", async () => {
    await waitFor(async () => (await machine("no-podman"))?.runners !== undefined, {
      what: "the agent to report its runners",
    });
    const m = await machine("no-podman");
    expect(m.runners).toMatchObject({ default: "native", podman: null });
    expect(typeof m.runners.bwrap).toBe("boolean");
    expect(["v1", "v2", null]).toContain(m.runners.cgroups);
    const shown = b9(["machine", "show", m.id], gw.adminKey);
    const line = /^Job runners:.*$/m.exec(shown)?.[0];
    expect(line).toMatch(/^Job runners:\s+native \(default\).*; memory limits: /);
    expect(line).not.toMatch(/podman/);
  }, 60_000);

  it("a rootfs job is never offered to a machine without podman: it waits, saying why", async () => {
    const made = await submit({ command: ["sh", "-c", "echo in the rootfs"], rootfs });
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    const waiting = await until(id, (j) => j.state === "QUEUED" && /podman/.test(j.reason ?? ""), {
      what: "the job to wait for podman",
    });
    expect(waiting.reason).toBe(
      "no ready machine in pool external has podman, which a job in a rootfs needs (install podman on a machine, or run the job without a rootfs)",
    );
    // Offered to no machine: no assignment, no decline.
    expect(waiting.events.map((e: Json) => e.state)).toEqual(["QUEUED"]);
    expect(b9(["job", "show", id], key)).toContain("no ready machine in pool external has podman");

    if (!podmanInstalled) return;
    // A machine with podman joins: the job goes there, and runs in the rootfs.
    await agentWith("with-podman", {});
    const done = await until(id, ["SUCCEEDED", "FAILED"], { timeoutMs: 120_000 });
    const withPodman = await machine("with-podman");
    expect(withPodman.runners.podman).toEqual({ rootless: process.getuid?.() !== 0 });
    expect(done).toMatchObject({ state: "SUCCEEDED", machine_id: withPodman.id });
    const assigned = done.events.filter((e: Json) => e.state === "ASSIGNED");
    expect(assigned.map((e: Json) => e.machine_id)).toEqual([withPodman.id]);
  }, 180_000);

  it("a command job still goes to the machine without podman", async () => {
    const made = await submit({ command: ["sh", "-c", "echo plain"] });
    const done = await until(made.body.id, ["SUCCEEDED", "FAILED"], { timeoutMs: 60_000 });
    expect(done.state).toBe("SUCCEEDED");
  }, 60_000);
});
