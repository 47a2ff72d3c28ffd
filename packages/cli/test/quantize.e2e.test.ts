import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type CliResult,
  childProcesses,
  type GatewayProc,
  interruptB9,
  type ModelAgent,
  runB9,
  startGateway,
  startModelAgent,
  startPythonFileServer,
  TEST_MODEL,
  tempDir,
  testModelAs,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * `b9 model deploy --quantize`: the real b9 binary → b9gateway → agent channel → b9agent, which pulls
 * the GGUF source, converts it with llama.cpp's quantize tool once, and serves the result on the
 * builtin engine (SmolLM2 Q4_1 → Q8_0).
 */

let gw: GatewayProc;
let worker: ModelAgent;
let env: NodeJS.ProcessEnv;

const FRANCE = "What is the capital of France?";

function b9(args: string[]): Promise<CliResult> {
  return runB9(args, env);
}

/** The agent's model store (beside its config), as the machine's owner sees it on disk. */
const storeDir = () => join(dirname(worker.agent.configPath), "models");
const record = (name: string) => {
  const file = join(storeDir(), "models", `${name}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
};
/** The agent's children that build or run the quantize tool. */
const converters = (agentPid: number) =>
  childProcesses(agentPid).filter((p) => /llama-quantize|c\+\+|g\+\+|clang|\bgit\b/.test(p.cmd));
const events = (stdout: string) =>
  stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as { status: string; unit?: string; model?: Record<string, unknown> });

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  worker = await startModelAgent(gw);
  env = {
    ...process.env,
    BETA9_GATEWAY: gw.url,
    BETA9_API_KEY: gw.adminKey,
    BETA9_CLI_CONFIG: `${tempDir()}/cli.json`,
  };
  await waitFor(async () => (await b9(["machine", "list"])).stdout.includes("READY"), {
    what: "the worker READY in b9 machine list",
    timeoutMs: 60_000,
  });
}, 180_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

// Each test pulls, converts and serves on a shared 2-core machine: minutes under load, seconds when quiet.
describe("b9 model deploy --quantize", { timeout: 240_000 }, () => {
  it("refuses a type llama.cpp does not have, or one that needs an importance matrix, before placing anything", async () => {
    const unknown = await b9([
      "model",
      "deploy",
      "smol-bad",
      "--source",
      testModelPath(),
      "--quantize",
      "Q9_9",
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /^error: cannot quantize smol-bad to "Q9_9": llama\.cpp has no such quantization type; use one of Q4_K_M, Q5_K_M, Q6_K, Q8_0, F16 \(or another of Q1_0, .*\)$/m,
    );
    const imatrix = await b9([
      "model",
      "deploy",
      "smol-bad",
      "--source",
      testModelPath(),
      "--quantize",
      "iq2_xs",
    ]);
    expect(imatrix.code).toBe(1);
    expect(imatrix.stderr).toMatch(
      /^error: cannot quantize smol-bad to IQ2_XS: that type needs an importance matrix/m,
    );
    const api = await gw.api<{ error: { code: string } }>("POST", "/api/v1/deployments", {
      name: "smol-bad",
      source: testModelPath(),
      quantize: "Q9_9",
    });
    expect(api).toMatchObject({ status: 400, body: { error: { code: "invalid_quantization" } } });
    expect((await b9(["model", "list"])).stdout).not.toMatch(/smol-bad/);
    expect(record("smol-bad")).toBeUndefined();
  });

  it("Ctrl-C during the conversion stops it on the machine and leaves no converted model or partial file", async () => {
    const deployed = await b9([
      "model",
      "deploy",
      "smol-stop",
      "--source",
      testModelPath(),
      "--quantize",
      "Q4_K_M",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);
    // First on this machine: the conversion begins by building llama-quantize (seconds), time to interrupt.
    const { code, stderr } = await interruptB9(["model", "pull", "smol-stop"], env, /quantiz/);
    expect(stderr).toMatch(/^worker: (preparing llama-quantize|quantizing smol-stop to Q4_K_M)/m);
    expect(code).toBe(130);
    // The machine stops the tool (or its build) once the channel says the caller went away.
    await waitFor(() => converters(worker.agent.proc.child.pid!).length === 0, {
      what: "no llama-quantize or compiler left running under the agent",
      timeoutMs: 30_000,
    });
    expect(readdirSync(join(storeDir(), "blobs")).filter((f) => f.startsWith(".tmp"))).toEqual([]);
    expect(record("smol-stop")).toBeUndefined();
    // What a later placement finds: nothing converted, so it converts afresh.
    expect((await b9(["model", "pull", "smol-stop"])).stderr).toMatch(
      /^worker: quantizing smol-stop to Q4_K_M 100%/m,
    );
  });

  it("converts the source once on the machine, with progress, and serves the converted model", async () => {
    const deployed = await b9([
      "model",
      "deploy",
      "smol-q8",
      "--source",
      testModelPath(),
      "--quantize",
      "q8_0",
      "--context",
      "2048",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(deployed.stdout).toMatch(
      /^The first machine converts its source to Q8_0 once; the others copy that conversion through the gateway\.$/m,
    );
    expect((await b9(["model", "show", "smol-q8"])).stdout).toMatch(
      /^Quantize:\s+Q8_0 \(converted once, copied to the other machines\)$/m,
    );

    const pull = await b9(["model", "pull", "smol-q8"]);
    expect(pull.code, pull.stderr).toBe(0);
    // The conversion's progress, counted in tensors, as the pull's is in bytes.
    expect(pull.stderr).toMatch(/^worker: quantizing smol-q8 to Q8_0 100% \((\d+) tensors of \1 tensors\)$/m);

    // The store holds the converted blob, its record linking it to the source and the tool.
    const converted = record("smol-q8");
    expect(converted).toMatchObject({
      format: "gguf",
      quantization: "Q8_0",
      owner: expect.any(String),
      converted_from: {
        name: "smol-q8.source",
        sha256: TEST_MODEL.sha256,
        quantization: "Q4_1",
        target: "Q8_0",
        converter: { tool: "llama-quantize", args: ["--allow-requantize", "Q8_0"] },
      },
    });
    expect(existsSync(join(storeDir(), "blobs", `sha256-${converted.sha256}`))).toBe(true);
    expect(converted.size).toBeGreaterThan(TEST_MODEL.bytes);

    // Pulled again before any replica runs: the machine answers with what it converted, no second run.
    const again = await b9(["model", "pull", "smol-q8", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const seen = events(again.stdout);
    expect(seen.some((e) => e.unit === "tensors")).toBe(false);
    expect(seen.map((e) => e.status)).toContain("smol-q8 is smol-q8.source quantized to Q8_0 already");
    expect(seen.at(-1)?.model).toMatchObject({ sha256: converted.sha256, quantization: "Q8_0" });

    const chat = await b9(["chat", "smol-q8", FRANCE, "--max-tokens", "12", "--temperature", "0"]);
    expect(chat.code, chat.stderr).toBe(0);
    expect(chat.stdout).toMatch(/Paris/);

    // Why the replica is where it is, and as what: format, quantisation, engine.
    const ps = await b9(["model", "ps"]);
    expect(ps.stdout).toMatch(
      /smol-q8 on worker: .*; serves GGUF Q8_0 on builtin \(the machine's choice for that format\), quantized on the machine from Q4_1 by llama-quantize llama\.cpp v[\d.]+ \(\w+\) as the deployment asks \(quantize Q8_0\)/,
    );
  });

  it("b9 model pull NAME --source … --quantize deploys it once and converts it on the machine", async () => {
    // A type no earlier test converted to, so this one converts.
    const pull = await b9(["model", "pull", "smol-q5", "--source", testModelPath(), "--quantize", "q5_k_m"]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).toMatch(
      /^worker: quantizing smol-q5 to Q5_K_M 100% \((\d+) tensors of \1 tensors\)$/m,
    );
    expect(pull.stdout).toMatch(/^Model smol-q5 pulled on worker \(sha256 [0-9a-f]{12}…, [\d.]+ MiB\)/);
    expect(record("smol-q5")).toMatchObject({ quantization: "Q5_K_M", converted_from: { target: "Q5_K_M" } });
    // The same again is only a pull; another type under that name is refused, saying what is deployed.
    expect(
      (await b9(["model", "pull", "smol-q5", "--source", testModelPath(), "--quantize", "Q5_K_M"])).code,
    ).toBe(0);
    const other = await b9(["model", "pull", "smol-q5", "--source", testModelPath(), "--quantize", "Q8_0"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(
      /^error: smol-q5 is deployed already from \S+ as Q5_K_M\n.*b9 model remove smol-q5/m,
    );
    const bad = await b9(["model", "pull", "smol-q9", "--source", testModelPath(), "--quantize", "Q9_9"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^error: cannot quantize smol-q9 to "Q9_9": llama\.cpp has no such quantization type/m,
    );
  });

  it("an architecture llama.cpp does not know: the pull fails naming the model, the conversion and the tool's reason", async () => {
    const files = await startPythonFileServer([await testModelAs("llamb", tempDir("b9-llamb-"))]);
    try {
      const deployed = await b9([
        "model",
        "deploy",
        "smol-llamb",
        "--source",
        files.url("llamb.gguf"),
        "--quantize",
        "Q8_0",
      ]);
      expect(deployed.code, deployed.stderr).toBe(0);
      const pull = await b9(["model", "pull", "smol-llamb"]);
      expect(pull.code).toBe(1);
      expect(pull.stderr).toMatch(
        /^error: quantizing smol-llamb\.source to Q8_0 as smol-llamb failed: .*unknown model architecture: 'llamb'/m,
      );
      expect(record("smol-llamb")).toBeUndefined();
    } finally {
      await files.stop();
    }
  });

  it("a second deployment of the same source and type reuses the machine's conversion", async () => {
    const deployed = await b9([
      "model",
      "deploy",
      "smol-q8-too",
      "--source",
      testModelPath(),
      "--quantize",
      "Q8_0",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);
    const pull = await b9(["model", "pull", "smol-q8-too", "--json"]);
    expect(pull.code, pull.stderr).toBe(0);
    const seen = events(pull.stdout);
    expect(seen.some((e) => e.unit === "tensors")).toBe(false);
    expect(seen.map((e) => e.status)).toContain("reusing smol-q8");
    // The same bytes: one blob in the store for both names.
    expect(record("smol-q8-too").sha256).toBe(record("smol-q8").sha256);
    expect(readdirSync(join(storeDir(), "blobs")).filter((f) => f.startsWith(".tmp"))).toEqual([]);
  });
});
