import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ADMIN_KEY, closedPort, type FakeGateway, READ_KEY, startFakeGateway } from "./fake-gateway.ts";
import { b9, NOW, tempHome } from "./harness.ts";

let gateway: FakeGateway;
let noFile: Record<string, string>;
beforeEach(async () => {
  gateway = await startFakeGateway(() => NOW);
  const home = tempHome();
  noFile = { HOME: home, BETA9_CLI_CONFIG: `${home}/absent.json` };
});
afterEach(() => gateway.close());

/** A stack trace shows up as "    at fn (file:line)" lines. */
const STACK = /^\s+at /m;

describe("friendly errors", () => {
  it("no gateway configured: says how to configure one", async () => {
    const r = await b9(noFile, "machine", "list");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: no gateway configured\nrun b9 login --gateway URL --api-key KEY or set BETA9_GATEWAY and BETA9_API_KEY\n",
    });
  });

  it("no API key configured: same next step", async () => {
    const r = await b9({ ...noFile, BETA9_GATEWAY: gateway.url }, "pool", "list");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `error: no API key configured for the gateway ${gateway.url}\n` +
        "run b9 login --gateway URL --api-key KEY or set BETA9_GATEWAY and BETA9_API_KEY\n",
    );
  });

  it("401: prints the gateway's message and says to check the key, naming where it came from", async () => {
    const r = await b9(
      { ...noFile, BETA9_GATEWAY: gateway.url, BETA9_API_KEY: "b9_revoked" },
      "machine",
      "list",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: The API key is not valid.\n" +
        "check the API key (taken from BETA9_API_KEY): it may be mistyped or revoked; " +
        "run b9 login --gateway URL --api-key KEY or set BETA9_GATEWAY and BETA9_API_KEY with a valid one\n",
    );
    expect(r.stderr).not.toMatch(STACK);
  });

  it("403: says which scope is needed and how to get a key with it", async () => {
    const r = await b9({ ...noFile, BETA9_GATEWAY: gateway.url, BETA9_API_KEY: READ_KEY }, "token", "create");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "error: This needs an API key with scope admin.\n" +
        "this needs a key with the admin scope (reads: read or admin); an admin can make one with b9 key create NAME --scopes admin\n",
    );
  });

  it("404: points at the list command of the same noun", async () => {
    const r = await b9(
      { ...noFile, BETA9_GATEWAY: gateway.url, BETA9_API_KEY: ADMIN_KEY },
      "machine",
      "cordon",
      "ghost",
    );
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: There is no machine ghost.\nsee them all with b9 machine list\n",
    });
  });

  it("connection refused: asks whether the gateway is running at that URL", async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}`;
    const r = await b9({ ...noFile, BETA9_GATEWAY: url, BETA9_API_KEY: ADMIN_KEY }, "machine", "list");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr:
        `error: cannot reach the gateway at ${url}: connection refused\n` +
        `is the gateway running at ${url}? If that address is wrong, change BETA9_GATEWAY.\n`,
    });
  });

  it("a gateway address that is not a URL names the setting", async () => {
    const r = await b9({ ...noFile, BETA9_GATEWAY: "ftp://x", BETA9_API_KEY: ADMIN_KEY }, "pool", "list");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^error: the gateway address from BETA9_GATEWAY is not usable: baseUrl must be http or https/,
    );
  });

  it("usage mistakes get commander's message and a pointer to --help, exit 1", async () => {
    const r = await b9(noFile, "machine", "show");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: missing required argument 'id'\n(add --help for usage)\n");
    const unknown = await b9(noFile, "machine", "list", "--bogus");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("error: unknown option '--bogus'");
  });

  it("--help and --version exit 0 and print to stdout", async () => {
    const help = await b9(noFile, "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: b9 [options] [command]");
    for (const noun of ["login", "token", "machine", "key", "pool"]) expect(help.stdout).toContain(noun);
    const version = await b9(noFile, "--version");
    expect(version).toEqual({ code: 0, stdout: "0.1.0\n", stderr: "" });
  });
});
