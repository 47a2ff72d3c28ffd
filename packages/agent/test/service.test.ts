import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { BIN, type GatewayProc, initAgent, startGateway, tempDir, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemdUnit } from "../src/service/unit.ts";

/*
 * `b9agent service`: the systemd unit it writes is checked by systemd's own `systemd-analyze verify`
 * (this machine does not boot systemd, so it is verified, not started) and its command line is run
 * as systemd would run it, joining a real gateway; the launchd property list is read by Python's
 * plistlib. Refusals leave nothing behind.
 */
const run = promisify(execFile);
let gw: GatewayProc;
let config: string;

beforeAll(async () => {
  gw = await startGateway();
  config = await initAgent(gw, { name: "as-a-service" });
}, 60_000);
afterAll(async () => {
  await gw?.proc.stop();
});

async function b9agent(args: string[], opts: { env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {}) {
  try {
    const r = await run(process.execPath, [BIN.agent, "service", ...args], {
      env: { ...process.env, ...opts.env },
      ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.gid }),
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** The words of an ExecStart= line, unquoted as systemd reads them. */
function execWords(unit: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
  return [...line.matchAll(/"((?:\\.|[^"\\])*)"|(\S+)/g)].map((m) =>
    m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!,
  );
}

describe("b9agent service with systemd", () => {
  it("writes a unit that systemd-analyze verifies and whose command runs the agent with its config", async () => {
    const dir = tempDir("b9-unit-");
    const r = await b9agent(["install", "--platform", "systemd", "--dir", dir, "--config", config]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const path = join(dir, "b9agent.service");
    expect(r.stdout).toBe(
      `Wrote ${path}.\nStart it at boot and now with: systemctl daemon-reload && systemctl enable --now b9agent.service\n`,
    );
    const unit = readFileSync(path, "utf8");
    expect(unit).toContain(`Environment=B9AGENT_CONFIG=${config}`);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^User=root$/m);
    expect(unit).toMatch(/^WantedBy=multi-user.target$/m);
    const verified = await run("systemd-analyze", ["verify", path]);
    expect(verified.stderr).toBe("");

    // What systemd would start: the agent comes up and its machine is READY at the gateway.
    const [command, ...args] = execWords(unit);
    expect(args.slice(-2)).toEqual(["run", "--no-tui"]);
    const env = /^Environment=B9AGENT_CONFIG=(.*)$/m.exec(unit)![1]!;
    const child = spawn(command!, args, { env: { ...process.env, B9AGENT_CONFIG: env }, stdio: "ignore" });
    try {
      await waitFor(
        async () =>
          (
            await gw.api<{ machines: { name: string; status: string }[] }>("GET", "/api/v1/machines")
          ).body.machines.some((m) => m.name === "as-a-service" && m.status === "READY"),
        { what: "the agent started by the unit's command READY", timeoutMs: 30_000 },
      );
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  }, 90_000);

  it("refuses a second install over the first, a missing config, and leaves what was there", async () => {
    const dir = tempDir("b9-unit-");
    expect((await b9agent(["install", "--platform", "systemd", "--dir", dir, "--config", config])).code).toBe(
      0,
    );
    const path = join(dir, "b9agent.service");
    const before = readFileSync(path, "utf8");
    const again = await b9agent(["install", "--platform", "systemd", "--dir", dir, "--config", config]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      `b9agent: b9agent is already installed as a service (${path}); run \`b9agent service uninstall\` first, or pass --force to replace it\n`,
    );
    expect(readFileSync(path, "utf8")).toBe(before);

    const empty = tempDir("b9-unit-");
    const missing = await b9agent([
      "install",
      "--platform",
      "systemd",
      "--dir",
      empty,
      "--config",
      join(empty, "nope.yaml"),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^b9agent: .*nope\.yaml/);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(existsSync(join(empty, "b9agent.service"))).toBe(false);

    expect((await b9agent(["uninstall", "--platform", "systemd", "--dir", dir])).stdout).toBe(
      `Removed the b9agent service (${path}).\n`,
    );
    expect(existsSync(path)).toBe(false);
    const gone = await b9agent(["uninstall", "--platform", "systemd", "--dir", dir]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("no b9agent service is installed here");
  }, 60_000);

  it("tells a user without the rights to write the unit's folder what to do, writing nothing", async () => {
    // A folder nobody may write, root included: a read-only file system.
    const ro = tempDir("b9-svc-ro-");
    execFileSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]);
    try {
      const r = await b9agent(["install", "--platform", "systemd", "--dir", ro, "--config", config]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `b9agent: cannot write ${join(ro, "b9agent.service")}: permission denied; run it with sudo for a system service, or install one for your user with --user\n`,
      );
      expect(readdirSync(ro)).toEqual([]);
    } finally {
      execFileSync("umount", [ro]);
    }
  }, 60_000);

  it("removes the unit again when systemd cannot enable it (no systemd running here): nothing half-installed", async () => {
    const home = tempDir("b9-svc-home-");
    const r = await b9agent(["install", "--user", "--platform", "systemd", "--config", config], {
      env: { HOME: home },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^b9agent: systemctl could not start the service \(.+\); nothing was installed\./,
    );
    expect(existsSync(join(home, ".config/systemd/user/b9agent.service"))).toBe(false);
  }, 60_000);

  it("restarts with a growing wait where systemd can (254 and later)", () => {
    const spec = {
      node: "/usr/bin/node",
      script: "/opt/b9 agent/b9agent.js",
      config: "/etc/b9/config.yaml",
      user: true,
    };
    expect(systemdUnit({ ...spec, systemdVersion: 254 })).toMatch(
      /^RestartSteps=10\nRestartMaxDelaySec=5min$/m,
    );
    const old = systemdUnit({ ...spec, systemdVersion: 252 });
    expect(old).not.toContain("RestartSteps");
    // A path with a space is one word; a user unit names no account.
    expect(old).toContain('ExecStart=/usr/bin/node "/opt/b9 agent/b9agent.js" run --no-tui');
    expect(old).not.toMatch(/^User=/m);
  });
});

describe("b9agent service with launchd", () => {
  it("writes a property list that plistlib reads: the agent's command, its config, restart on failure", async () => {
    const dir = tempDir("b9-plist-");
    const r = await b9agent(["install", "--user", "--platform", "launchd", "--dir", dir, "--config", config]);
    expect(r.code).toBe(0);
    const path = join(dir, "dev.beta9.agent.plist");
    expect(statSync(path).mode & 0o777).toBe(0o644);
    const python = process.env.BETA9_TEST_PYTHON ?? "python3";
    const read = await run(python, [
      "-c",
      "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
      path,
    ]);
    const plist = JSON.parse(read.stdout) as Record<string, unknown>;
    expect(plist).toMatchObject({
      Label: "dev.beta9.agent",
      EnvironmentVariables: { B9AGENT_CONFIG: config },
      RunAtLoad: true,
      KeepAlive: { SuccessfulExit: false },
      ThrottleInterval: 10,
    });
    const args = plist.ProgramArguments as string[];
    expect(args.slice(-2)).toEqual(["run", "--no-tui"]);
    expect(existsSync(args[0]!) && existsSync(args[1]!)).toBe(true);
    expect(plist.UserName).toBeUndefined();
  }, 60_000);
});
