import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { BIN, type GatewayProc, initAgent, startGateway, tempDir } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

const run = promisify(execFile);

/** The real b9 binary against a real gateway: where machines stand, and where workspaces' work may run. */
describe("b9 residency commands", () => {
  let gw: GatewayProc;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    gw = await startGateway();
    env = {
      ...process.env,
      BETA9_GATEWAY: gw.url,
      BETA9_API_KEY: gw.adminKey,
      BETA9_CLI_CONFIG: `${tempDir()}/cli.json`,
    };
  });
  afterAll(async () => {
    await gw?.proc.stop();
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
  const machineId = (configPath: string) =>
    (YAML.parse(readFileSync(configPath, "utf8")) as { machine: { id: string } }).machine.id;

  it("binds a country to a join token, sets a machine's country and PUE, and lists both with what it declares", async () => {
    const created = await b9("token", "create", "--country", "de", "--json");
    expect(created.code).toBe(0);
    const token = JSON.parse(created.stdout) as { token: string; country: string };
    expect(token.country).toBe("DE");
    expect((await b9("token", "create", "--country", "uk")).stderr).toMatch(/the United Kingdom is GB/);
    const inGermany = machineId(await initAgent(gw, { name: "berlin", token: token.token }));
    // A machine joined with a bare token says it is in France: shown, not believed.
    const says = machineId(await initAgent(gw, { name: "says-fr", args: ["--country", "FR"] }));
    const list = (await b9("machine", "list")).stdout;
    expect(list).toMatch(/COUNTRY/);
    expect(list).toMatch(new RegExp(`${inGermany}\\s+berlin\\s+external\\s+DE\\s`));
    expect(list).toMatch(new RegExp(`${says}\\s+says-fr\\s+external\\s+- \\(says FR\\)`));

    const set = await b9("machine", "set", says, "--country", "pl", "--pue", "1.3");
    expect(set).toMatchObject({
      code: 0,
      stdout: `Machine ${says}: country PL (it declares FR), PUE 1.3.\n`,
    });
    const shown = (await b9("machine", "show", says)).stdout;
    expect(shown).toMatch(/^Country: +PL$/m);
    expect(shown).toMatch(/^Declared country: +FR \(the machine's own word; not used to place work\)$/m);
    expect(shown).toMatch(/^PUE: +1\.3$/m);
    expect((await b9("machine", "set", says, "--pue", "0.5")).stderr).toMatch(/a PUE is a number from 1.0/);
    expect((await b9("machine", "set", says)).stderr).toMatch(/say what to set/);
  });

  it("limits a workspace to the EU or countries, and a key within it, never wider", async () => {
    const made = await b9("workspace", "create", "eu-team", "--region", "eu");
    expect(made.stdout).toMatch(/^Workspace eu-team created; its work runs only in the EU\./);
    const narrowed = await b9("workspace", "set", "eu-team", "--countries", "de,fr");
    expect(narrowed.stdout).toBe("Workspace eu-team runs only in DE,FR in the EU.\n");
    const wide = await b9(
      "key",
      "create",
      "w",
      "--workspace",
      "eu-team",
      "--scopes",
      "inference",
      "--countries",
      "US",
    );
    expect(wide.code).toBe(1);
    expect(wide.stderr).toMatch(/runs only in DE,FR in the EU; a key cannot widen that \(US is outside it\)/);
    const key = await b9(
      "key",
      "create",
      "k",
      "--workspace",
      "eu-team",
      "--scopes",
      "inference",
      "--countries",
      "DE",
    );
    expect(key.stdout).toMatch(/workspace eu-team; runs only in DE\)/);
    const cleared = await b9("workspace", "set", "eu-team", "--region", "none", "--countries", "none");
    expect(cleared.stderr).toBe("");
    expect(cleared.stdout).toBe("Workspace eu-team runs anywhere.\n");
  });
});
