import { basename } from "node:path";
import {
  askFrance,
  builtQuantizeTool,
  type CliResult,
  cliEnv,
  type FileServer,
  type GatewayProc,
  type ModelAgent,
  runB9,
  startGateway,
  startModelAgent,
  startPythonFileServer,
  storedRecord,
  testModelPath,
  waitMachineReady,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * `b9gateway --convert-on conv`: the pool's conversions are made on one machine the operator chose
 * (here in a pool of its own, so it never serves), and the machines that serve copy them. The real
 * b9, gateway and agents. A workspace whose work must stay in Germany never has its weights converted
 * on a machine outside it: its serving machine converts for itself.
 */

let gw: GatewayProc;
let conv: ModelAgent;
let worker: ModelAgent;
let env: NodeJS.ProcessEnv;
let files: FileServer;
const b9 = (args: string[], e = env): Promise<CliResult> => runB9(args, e);
const record = (a: ModelAgent, name: string) => storedRecord(a.agent.configPath, name);
const builtTool = (a: ModelAgent) => builtQuantizeTool(a.agent.configPath);

/** The model, asked through the gateway at temperature 0, names Paris. */
async function expectParis(model: string): Promise<void> {
  const chat = await askFrance(model, env);
  expect(chat.code, chat.stderr).toBe(0);
  expect(chat.stdout).toMatch(/Paris/);
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s", "--convert-on", "conv"] });
  env = cliEnv(gw);
  // A pool of its own, which no deployment names: conv converts, and never serves.
  expect((await b9(["pool", "create", "convert"])).code).toBe(0);
  const convToken = await gw.api<{ token: string }>("POST", "/api/v1/tokens", { pool: "convert" });
  expect(convToken.status).toBe(201);
  conv = await startModelAgent(gw, { name: "conv", token: convToken.body.token });
  // The lab's source is an http(s) one, on this host: python's http.server, allowed on the worker.
  files = await startPythonFileServer([testModelPath()]);
  worker = await startModelAgent(gw, { name: "worker", country: "DE", allowPrivateSources: ["127.0.0.1"] });
  await waitMachineReady(gw, "conv");
  await waitMachineReady(gw, "worker");
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await conv?.agent.proc.stop();
  await gw?.proc.stop();
  await files?.stop();
});

describe("b9gateway --convert-on", { timeout: 300_000 }, () => {
  it("converts on the chosen machine, which serves nothing; the serving machine copies and answers Paris", async () => {
    expect(
      (await b9(["model", "deploy", "smol-c", "--source", testModelPath(), "--quantize", "Q8_0"])).code,
    ).toBe(0);
    const pull = await b9(["model", "pull", "smol-c"]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).toMatch(/^converting smol-c on conv, the pool's conversion machine$/m);
    expect(pull.stderr).toMatch(/^conv: quantizing smol-c to Q8_0 100%/m);
    expect(pull.stderr).toMatch(/^worker: fetching smol-c from conv, which converted it 100%/m);
    expect(pull.stdout).toMatch(/^Model smol-c pulled on worker /m);
    const made = record(conv, "smol-c");
    expect(record(worker, "smol-c")).toMatchObject({
      sha256: made.sha256,
      converted_from: { ...made.converted_from, converted_on: "conv" },
    });
    expect(builtTool(conv)).toBe(true);
    expect(builtTool(worker)).toBe(false);

    await expectParis("smol-c");
    const ps = (await b9(["model", "ps"])).stdout;
    expect(ps).toMatch(
      /smol-c on worker: .*quantized on conv from Q4_1 .*, copied from there through the gateway/,
    );
    expect(ps).not.toMatch(/on conv:/);
  });

  it("a cold start (a request before any pull) also has the chosen machine convert, then copies", async () => {
    expect(
      (await b9(["model", "deploy", "smol-cold", "--source", testModelPath(), "--quantize", "Q5_K_M"])).code,
    ).toBe(0);
    await expectParis("smol-cold");
    const made = record(conv, "smol-cold");
    expect(made).toMatchObject({ quantization: "Q5_K_M", converted_from: { target: "Q5_K_M" } });
    expect(record(worker, "smol-cold")).toMatchObject({
      sha256: made.sha256,
      converted_from: { ...made.converted_from, converted_on: "conv" },
    });
    expect(builtTool(worker)).toBe(false);
  });

  it("never has a workspace's weights converted on a machine outside its countries", async () => {
    expect((await b9(["workspace", "create", "lab-de", "--countries", "DE"])).code).toBe(0);
    const key = await b9([
      "key",
      "create",
      "lab-admin",
      "--workspace",
      "lab-de",
      "--scopes",
      "admin",
      "--json",
    ]);
    expect(key.code, key.stderr).toBe(0);
    const lab = { ...cliEnv(gw), BETA9_API_KEY: (JSON.parse(key.stdout) as { key: string }).key };
    const source = files.url(basename(testModelPath()));
    expect(
      (await b9(["model", "deploy", "smol-de", "--source", source, "--quantize", "Q8_0"], lab)).code,
    ).toBe(0);
    const pull = await b9(["model", "pull", "smol-de"], lab);
    expect(pull.code, pull.stderr).toBe(0);
    // conv has no country: the machine in Germany converts for itself.
    expect(pull.stderr).not.toMatch(/conv/);
    expect(pull.stderr).toMatch(/^worker: quantizing smol-de to Q8_0 100%/m);
    expect(record(conv, "smol-de")).toBeUndefined();
    expect(record(worker, "smol-de")?.converted_from.converted_on).toBeUndefined();
  });
});
