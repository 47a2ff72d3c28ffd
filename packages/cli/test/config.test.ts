import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../src/config.ts";
import { ADMIN_KEY, closedPort, type FakeGateway, READ_KEY, startFakeGateway } from "./fake-gateway.ts";
import { b9, NOW, tempHome } from "./harness.ts";

let gateway: FakeGateway;
let home: string;
let configFile: string;
beforeEach(async () => {
  gateway = await startFakeGateway(() => NOW);
  home = tempHome();
  configFile = join(home, "b9", "cli.json");
});
afterEach(() => gateway.close());

const mode = (path: string) => statSync(path).mode & 0o777;

describe("b9 login", () => {
  it("checks the gateway and the key, then writes the file with mode 0600", async () => {
    const r = await b9(
      { HOME: home, BETA9_CLI_CONFIG: configFile },
      "login",
      "--gateway",
      gateway.url,
      "--api-key",
      ADMIN_KEY,
    );
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe(`Logged in to ${gateway.url} (gateway version 9.9.9).\nSaved to ${configFile}.\n`);
    expect(gateway.requests.map((q) => q.url)).toEqual(["/health", "/api/v1/pools"]);
    expect(JSON.parse(readFileSync(configFile, "utf8"))).toEqual({
      gateway: gateway.url,
      api_key: ADMIN_KEY,
    });
    expect(mode(configFile)).toBe(0o600);
  });

  it("writes ~/.config/beta9/cli.json when BETA9_CLI_CONFIG is not set", async () => {
    const hostPort = gateway.url.replace("http://", "");
    const r = await b9({ HOME: home }, "login", "--gateway", hostPort, "--api-key", ADMIN_KEY, "--json");
    expect(JSON.parse(r.stdout)).toEqual({
      gateway: gateway.url,
      version: "9.9.9",
      config_path: join(home, ".config", "beta9", "cli.json"),
    });
    const path = join(home, ".config", "beta9", "cli.json");
    expect(mode(path)).toBe(0o600);
    expect(JSON.parse(readFileSync(path, "utf8")).gateway).toBe(gateway.url);
  });

  it("tightens an existing file that others could read", async () => {
    mkdirSync(join(home, "b9"));
    writeFileSync(configFile, "{}", { mode: 0o644 });
    chmodSync(configFile, 0o644);
    await b9(
      { HOME: home, BETA9_CLI_CONFIG: configFile },
      "login",
      "--gateway",
      gateway.url,
      "--api-key",
      ADMIN_KEY,
    );
    expect(mode(configFile)).toBe(0o600);
  });

  it("refuses a key the gateway rejects and writes nothing", async () => {
    const r = await b9(
      { HOME: home, BETA9_CLI_CONFIG: configFile },
      "login",
      "--gateway",
      gateway.url,
      "--api-key",
      "b9_wrong",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: The API key is not valid\.\ncheck the API key/);
    expect(existsSync(configFile)).toBe(false);
  });

  it("--no-verify saves without asking the gateway", async () => {
    const port = await closedPort();
    const r = await b9(
      { HOME: home, BETA9_CLI_CONFIG: configFile },
      "login",
      "--gateway",
      `http://127.0.0.1:${port}`,
      "--api-key",
      ADMIN_KEY,
      "--no-verify",
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Logged in to http://127.0.0.1:${port}.\nSaved to ${configFile}.\n`);
  });

  it("takes the key from BETA9_API_KEY, keeping it out of shell history", async () => {
    const r = await b9(
      { HOME: home, BETA9_CLI_CONFIG: configFile, BETA9_API_KEY: READ_KEY },
      "login",
      "--gateway",
      gateway.url,
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(configFile, "utf8")).api_key).toBe(READ_KEY);
  });

  it("needs a gateway", async () => {
    const r = await b9({ HOME: home, BETA9_CLI_CONFIG: configFile }, "login", "--api-key", ADMIN_KEY);
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: login needs the gateway's URL\nrun b9 login --gateway URL --api-key KEY\n",
    });
  });
});

describe("settings: environment over file", () => {
  it("later commands use what login saved", async () => {
    await b9(
      { HOME: home, BETA9_CLI_CONFIG: configFile },
      "login",
      "--gateway",
      gateway.url,
      "--api-key",
      READ_KEY,
    );
    gateway.requests.length = 0;
    const r = await b9({ HOME: home, BETA9_CLI_CONFIG: configFile }, "pool", "list");
    expect(r.code).toBe(0);
    expect(gateway.requests[0]?.headers.authorization).toBe(`Bearer ${READ_KEY}`);
  });

  it("BETA9_GATEWAY and BETA9_API_KEY win over the file", async () => {
    const port = await closedPort();
    mkdirSync(join(home, "b9"));
    writeFileSync(configFile, JSON.stringify({ gateway: `http://127.0.0.1:${port}`, api_key: READ_KEY }), {
      mode: 0o600,
    });
    const env = {
      HOME: home,
      BETA9_CLI_CONFIG: configFile,
      BETA9_GATEWAY: gateway.url,
      BETA9_API_KEY: ADMIN_KEY,
    };
    const r = await b9(env, "pool", "list");
    expect(r.code).toBe(0);
    expect(gateway.requests[0]?.headers.authorization).toBe(`Bearer ${ADMIN_KEY}`);
  });

  it("each setting falls back to the file on its own", async () => {
    mkdirSync(join(home, "b9"));
    writeFileSync(configFile, JSON.stringify({ gateway: "http://127.0.0.1:9", api_key: READ_KEY }), {
      mode: 0o600,
    });
    const config = resolveConfig({ BETA9_CLI_CONFIG: configFile, BETA9_GATEWAY: gateway.url });
    expect(config.gateway).toEqual({ value: gateway.url, source: "BETA9_GATEWAY" });
    expect(config.apiKey).toEqual({ value: READ_KEY, source: configFile });
    expect(config.warnings).toEqual([]);
  });

  it("warns when the file is readable by others", async () => {
    mkdirSync(join(home, "b9"));
    writeFileSync(configFile, JSON.stringify({ gateway: gateway.url, api_key: READ_KEY }));
    chmodSync(configFile, 0o644);
    const r = await b9({ HOME: home, BETA9_CLI_CONFIG: configFile }, "pool", "list");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `warning: ${configFile} holds an API key and others can read it; run chmod 600 ${configFile}\n`,
    );
  });

  it("login warns when a variable will override what it saved", async () => {
    const env = { HOME: home, BETA9_CLI_CONFIG: configFile, BETA9_GATEWAY: "http://elsewhere:1994" };
    const r = await b9(env, "login", "--gateway", gateway.url, "--api-key", ADMIN_KEY);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      "note: BETA9_GATEWAY is set and wins over the saved file; unset it to use this login\n",
    );
  });

  it("a broken file is a user error with a way out", async () => {
    mkdirSync(join(home, "b9"));
    writeFileSync(configFile, "{not json", { mode: 0o600 });
    const r = await b9({ HOME: home, BETA9_CLI_CONFIG: configFile }, "machine", "list");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: `error: ${configFile} is not valid JSON\nfix the file, or write it again with b9 login --gateway URL --api-key KEY\n`,
    });
  });
});
