import { execFile } from "node:child_process";
import { promisify } from "node:util";
import {
  BIN,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  tempDir,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);

/** The real b9 binary against a real gateway with a real agent joined. */
describe("b9 against a real gateway", () => {
  let gw: GatewayProc;
  const stops: (() => Promise<unknown>)[] = [];
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    gw = await startGateway();
    stops.push(() => gw.proc.stop());
    env = {
      ...process.env,
      BETA9_GATEWAY: gw.url,
      BETA9_API_KEY: gw.adminKey,
      BETA9_CLI_CONFIG: `${tempDir()}/cli.json`,
    };
  });
  afterAll(async () => {
    for (const s of stops.reverse()) await s();
  });

  const b9 = async (...args: string[]) => {
    try {
      const r = await run(process.execPath, [BIN.cli, ...args], { env });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it("creates a token a new machine joins with, then lists, cordons and uncordons it", async () => {
    const created = await b9(
      "token",
      "create",
      "--pool",
      "external",
      "--ttl",
      "10m",
      "--uses",
      "1",
      "--json",
    );
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout).token as string;
    expect(token).toMatch(/^b9j_/);
    const human = await b9("token", "create", "--ttl", "1h");
    expect(human.stdout).toMatch(/b9agent init --gateway 127\.0\.0\.1:\d+ --token b9j_/);

    const path = await initAgent(gw, { token, name: "rig-01" });
    const agent = await startAgent(path);
    stops.push(() => agent.proc.stop());
    await waitFor(async () => (await b9("machine", "list")).stdout.includes("READY"), {
      what: "READY in b9 machine list",
    });
    const table = (await b9("machine", "list")).stdout;
    expect(table).toMatch(/^ID\s+NAME\s+POOL\s+COUNTRY\s+STATUS/m);
    // Joined with a token that binds no country: none is set ("-").
    expect(table).toMatch(/rig-01\s+external\s+-\s+READY/);
    // Each machine with its agent's version.
    expect(table).toMatch(/\sAGENT\s+LAST HEARTBEAT\n.*\s0\.1\.0\s+\d+s ago\n/);

    const id = JSON.parse((await b9("machine", "list", "--json")).stdout).machines[0].id as string;
    expect((await b9("machine", "cordon", id)).code).toBe(0);
    expect(JSON.parse((await b9("machine", "show", id, "--json")).stdout).status).toBe("CORDONED");
    await b9("machine", "uncordon", id);
    expect(JSON.parse((await b9("machine", "show", id, "--json")).stdout).status).toBe("READY");
  });

  it("manages API keys, and a read-only key cannot create tokens", async () => {
    const key = JSON.parse((await b9("key", "create", "dashboard", "--scopes", "read", "--json")).stdout);
    expect(key.key).toMatch(/^b9_/);
    expect((await b9("key", "list")).stdout).toContain("dashboard");
    const denied = await run(process.execPath, [BIN.cli, "token", "create"], {
      env: { ...env, BETA9_API_KEY: key.key },
    }).catch((e) => e);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^error: .*admin/m);
    expect(denied.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace for a user error
    const limited = await b9("key", "limit", key.id, "--rpm", "60", "--tpm", "none");
    expect(limited).toMatchObject({ code: 0, stdout: `API key dashboard (${key.id}): 60 rpm.\n` });
    expect((await b9("key", "list")).stdout).toMatch(/dashboard.*60 rpm/);
    const nothing = await b9("key", "limit", key.id);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/^error: say which limit to change/m);
    expect((await b9("key", "limit", key.id, "--rpm", "0")).stderr).toMatch(
      /--rpm takes a whole number of at least 1/,
    );
    expect((await b9("key", "revoke", key.id)).code).toBe(0);
  });

  it("deploys, lists, shows and removes a model whose name has ':' and '/'", async () => {
    const name = "library/llama3.2:1b";
    const deployed = await b9(
      "model",
      "deploy",
      name,
      "--source",
      "ollama:llama3.2:1b",
      "--max",
      "2",
      "--idle",
      "10m",
      "--min-vram",
      "4GiB",
      "--country",
      "de,fr",
      "--json",
    );
    expect(deployed.code).toBe(0);
    expect(JSON.parse(deployed.stdout)).toMatchObject({
      name,
      workspace: "default",
      min_replicas: 0,
      max_replicas: 2,
      idle_seconds: 600,
      pool: "external",
      gpu: "any",
      min_vram_bytes: 4 * 2 ** 30,
      countries: ["DE", "FR"],
    });
    expect((await b9("model", "list")).stdout).toMatch(
      /library\/llama3\.2:1b\s+ollama:llama3\.2:1b\s+-\s+0-2\s+10m/,
    );
    expect((await b9("model", "show", name)).stdout).toContain("Min VRAM:      4 GiB\n");
    const again = await b9("model", "deploy", name, "--source", "x");
    expect(again).toMatchObject({ code: 1 });
    expect(again.stderr).toMatch(/^error: a deployment named library\/llama3\.2:1b exists already/);
    expect((await b9("model", "remove", name)).stdout).toBe(`Model ${name} removed.\n`);
    const gone = await b9("model", "show", name);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("see them all with b9 model list");
  });

  it("makes a workspace and its admin key; that key deploys in its own workspace and runs nothing of the pool", async () => {
    const made = await b9("workspace", "create", "lab");
    expect(made).toMatchObject({ code: 0, stderr: "" });
    expect(made.stdout).toBe(
      "Workspace lab created. Give it a key with b9 key create NAME --workspace lab --scopes admin.\n",
    );
    expect((await b9("workspace", "list")).stdout).toMatch(
      /^NAME\s+ID\s+LIMITS\s+AUDIT CONTENT\s+CREATED\s+RUNS THE POOL\ndefault\s+ws_\S+\s+-\s+-\s+.+\s+yes\nlab\s+ws_\S+\s+-\s+-\s+.+\s+-\n$/,
    );
    const labKey = JSON.parse(
      (await b9("key", "create", "lab-admin", "--workspace", "lab", "--scopes", "admin", "--json")).stdout,
    );
    expect(labKey).toMatchObject({ workspace: "lab", key: expect.stringMatching(/^b9_/) });

    const asLab = (...args: string[]) =>
      run(process.execPath, [BIN.cli, ...args], { env: { ...env, BETA9_API_KEY: labKey.key } }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
      );
    expect(JSON.parse((await asLab("workspace", "list", "--json")).stdout).workspaces).toEqual([
      expect.objectContaining({ name: "lab", operator: false }),
    ]);
    // Its own admins choose whether its audit log keeps prompts and answers (a GDPR choice).
    const kept = await asLab("workspace", "set", "lab", "--audit-content", "on");
    expect(kept.stdout).toMatch(/^Workspace lab's audit log keeps prompts and answers \(since \d{4}-/);
    expect((await b9("workspace", "list")).stdout).toMatch(/\nlab\s+ws_\S+\s+-\s+kept\s+/);
    const bad = await asLab("workspace", "set", "lab", "--audit-content", "maybe");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--audit-content takes on or off");
    expect((await asLab("workspace", "set", "lab", "--audit-content", "off")).stdout).toContain(
      "keeps no prompts or answers from now on",
    );
    const deployed = await asLab("model", "deploy", "lab-model", "--source", "ollama:qwen2.5:0.5b", "--json");
    expect(JSON.parse(deployed.stdout)).toMatchObject({ name: "lab-model", workspace: "lab" });
    expect((await b9("model", "list")).stdout).not.toContain("lab-model");
    for (const args of [
      ["token", "create"],
      ["workspace", "create", "mine"],
      ["pool", "create", "mine"],
    ]) {
      const denied = await asLab(...args);
      expect(denied.code, args.join(" ")).toBe(1);
      expect(denied.stderr).toMatch(
        /^error: only a key of the default workspace, which runs the pool, may /m,
      );
    }
    // The name is taken in the pool: the operator's workspace cannot make it mean another model.
    const clash = await b9("model", "deploy", "lab-model", "--source", "ollama:llama3.2:1b");
    expect(clash.code).toBe(1);
    expect(clash.stderr).toMatch(/another workspace has deployed a model named lab-model/);
    expect((await asLab("model", "remove", "lab-model")).code).toBe(0);

    const limited = await b9("workspace", "limit", "lab", "--rpm", "600", "--tpm", "none");
    expect(limited).toMatchObject({ code: 0, stdout: "Workspace lab: 600 rpm for all its keys together.\n" });
    expect((await b9("workspace", "list")).stdout).toMatch(/^lab\s+ws_\S+\s+600 rpm\s/m);
    const capped = await b9("workspace", "limit", "lab", "--max-jobs", "4", "--gpu-hours", "2.5");
    expect(capped).toMatchObject({
      code: 0,
      stdout:
        "Workspace lab: 600 rpm for all its keys together. At most 4 of its jobs run at once. Its jobs may use 2.5 GPU-hours a day.\n",
    });
    expect((await b9("workspace", "limit", "lab", "--gpu-hours", "-1")).stderr).toMatch(
      /--gpu-hours takes a number/,
    );
    expect((await asLab("workspace", "limit", "lab", "--rpm", "none")).stderr).toMatch(
      /^error: only a key of the default workspace, which runs the pool, may change a workspace's limits/m,
    );

    const unsure = await b9("workspace", "remove", "lab");
    expect(unsure.code).toBe(1);
    expect(unsure.stderr).toMatch(/this removes workspace lab with every deployment and API key in it/);
    expect(unsure.stderr).toContain("b9 workspace remove lab --yes");
    const removed = await b9("workspace", "remove", "lab", "--yes");
    expect(removed).toMatchObject({
      code: 0,
      stdout: "Workspace lab removed, with 0 deployments and 1 API key.\n",
    });
    expect((await asLab("model", "list")).stderr).toMatch(/^error: unknown API key/m);
  });

  it("explains a gateway that is not there", async () => {
    const r = await run(process.execPath, [BIN.cli, "machine", "list"], {
      env: { ...env, BETA9_GATEWAY: "http://127.0.0.1:9" },
    }).catch((e) => e);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/gateway/i);
    expect(r.stderr).toMatch(/127\.0\.0\.1:9/);
  });
});
