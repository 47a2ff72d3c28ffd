import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildProgram } from "../src/program.ts";
import { ADMIN_KEY, type FakeGateway, startFakeGateway } from "./fake-gateway.ts";
import { b9, captureIO, machines, NOW } from "./harness.ts";

let gateway: FakeGateway;
let env: Record<string, string>;
beforeEach(async () => {
  gateway = await startFakeGateway(() => NOW, { machines: machines() });
  env = {
    BETA9_GATEWAY: gateway.url,
    BETA9_API_KEY: ADMIN_KEY,
    BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json",
  };
});
afterEach(() => gateway.close());

describe("b9 machine list", () => {
  it("prints a borderless table with cores, GiB, GPU counts and heartbeat ages", async () => {
    const r = await b9(env, "machine", "list");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe(
      [
        "ID         NAME         POOL       COUNTRY   STATUS    CPU   MEMORY     GPUS                  AGENT   LAST HEARTBEAT",
        "a1b2c3d4   gpu-box-1    gpu        DE        READY     32    128 GiB    2x NVIDIA H100 80GB   0.1.0   3s ago",
        "e5f6a7b8   mac-studio   gpu        -         BUSY      24    192 GiB    1x Apple M2 Ultra     0.1.0   2m ago",
        "c0ffee00   cpu-only     external   -         OFFLINE   4     15.5 GiB   -                     0.1.0   never",
        "",
      ].join("\n"),
    );
    expect(gateway.requests[0]).toMatchObject({ method: "GET", url: "/api/v1/machines" });
    expect(gateway.requests[0]?.headers.authorization).toBe(`Bearer ${ADMIN_KEY}`);
  });

  it("passes --pool and --status (any case) to the gateway", async () => {
    const r = await b9(env, "machine", "list", "--pool", "gpu", "--status", "ready");
    expect(r.code).toBe(0);
    expect(gateway.requests[0]?.url).toBe("/api/v1/machines?pool=gpu&status=READY");
    expect(r.stdout.trim().split("\n")).toHaveLength(2);
  });

  it("refuses an unknown --status before asking the gateway, listing the states", async () => {
    const r = await b9(env, "machine", "list", "--status", "bogus");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'unknown status "bogus"; choose from READY, BUSY, UNHEALTHY, OFFLINE, CORDONED, DRAINING, DRAINED',
    );
    expect(gateway.requests).toHaveLength(0);
  });

  it("--json prints the gateway's answer as it came", async () => {
    const r = await b9(env, "machine", "ls", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ machines: machines(), next: null });
  });

  it("says so on stderr when there are none, leaving stdout empty", async () => {
    const r = await b9(env, "machine", "list", "--pool", "nowhere");
    expect(r).toMatchObject({ code: 0, stdout: "" });
    expect(r.stderr).toMatch(/^No machines found/);
  });

  it("can be driven through buildProgram directly", async () => {
    const io = captureIO(env);
    await buildProgram(io).parseAsync(["machine", "list", "--json"], { from: "user" });
    expect(JSON.parse(io.out.join("")).machines).toHaveLength(3);
  });
});

describe("b9 machine show", () => {
  it("prints one machine's details with live usage", async () => {
    const r = await b9(env, "machine", "show", "a1b2c3d4");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Status:           READY\n");
    expect(r.stdout).toContain("Country:          DE\n");
    expect(r.stdout).toContain("Last heartbeat:   3s ago\n");
    expect(r.stdout).toContain("CPU:              AMD EPYC 9454 (32 cores, 12% busy)\n");
    expect(r.stdout).toContain("Memory:           128 GiB (40 GiB used)\n");
    expect(r.stdout).toContain(
      "GPUs:             0: NVIDIA H100 80GB (80 GiB, cuda, driver 550.54, 20 GiB used, 55% busy)\n" +
        "                  1: NVIDIA H100 80GB (80 GiB, cuda, driver 550.54)\n",
    );
  });

  it("--json prints the machine", async () => {
    const r = await b9(env, "machine", "show", "e5f6a7b8", "--json");
    expect(JSON.parse(r.stdout)).toEqual(machines()[1]);
  });

  it("URL-encodes the id", async () => {
    await b9(env, "machine", "show", "a/b");
    expect(gateway.requests[0]?.url).toBe("/api/v1/machines/a%2Fb");
  });
});

describe("b9 machine cordon | uncordon | drain | remove", () => {
  it("cordons, drains and uncordons, printing the new status", async () => {
    let r = await b9(env, "machine", "cordon", "a1b2c3d4");
    expect(r).toMatchObject({ code: 0, stdout: "Machine a1b2c3d4 cordoned; status CORDONED.\n" });
    r = await b9(env, "machine", "drain", "a1b2c3d4");
    expect(r.stdout).toBe("Machine a1b2c3d4 draining; status DRAINING.\n");
    r = await b9(env, "machine", "uncordon", "a1b2c3d4", "--json");
    expect(JSON.parse(r.stdout)).toMatchObject({ id: "a1b2c3d4", status: "READY", cordoned: false });
    expect(gateway.requests.map((q) => `${q.method} ${q.url}`)).toEqual([
      "POST /api/v1/machines/a1b2c3d4/cordon",
      "POST /api/v1/machines/a1b2c3d4/drain",
      "POST /api/v1/machines/a1b2c3d4/uncordon",
    ]);
  });

  it("removes a machine", async () => {
    const r = await b9(env, "machine", "remove", "c0ffee00");
    expect(r).toMatchObject({ code: 0, stdout: "Machine c0ffee00 removed.\n" });
    expect(gateway.requests[0]).toMatchObject({ method: "DELETE", url: "/api/v1/machines/c0ffee00" });
    const json = await b9(env, "machine", "rm", "e5f6a7b8", "--json");
    expect(JSON.parse(json.stdout)).toEqual({ id: "e5f6a7b8", removed: true });
  });
});
