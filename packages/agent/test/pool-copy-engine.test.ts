import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CliResult,
  cliEnv,
  type GatewayProc,
  type ModelAgent,
  runB9,
  startGateway,
  startModelAgent,
  tempDir,
  testConverterPython,
  testModelPath,
  testPython,
  waitFor,
  waitMachineReady,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { printing, stub, stubPath } from "../src/engines/testing/stub-path.ts";

/*
 * A GGUF deployment for vLLM on two NVIDIA machines: each must load a safetensors directory, and the
 * pool converts the GGUF once. The real gateway, CLI and agents, the real converter on the first
 * machine; the second has no converter at all and copies the first's directory through the gateway,
 * file by file, each checked against the directory's list. vLLM and an H100 cannot run here: each
 * agent's PATH has the vLLM stand-in (it answers as the real server and records its command line) and
 * an nvidia-smi that prints what a real H100 printed (testdata/hardware).
 */

const standIns = fileURLToPath(new URL("../src/engines/testing/python", import.meta.url));
const h100 = fileURLToPath(new URL("../testdata/hardware/nvidia-smi-h100-idle.csv", import.meta.url));

let gw: GatewayProc;
const agents = new Map<string, { agent: ModelAgent; record: string }>();
let env: NodeJS.ProcessEnv;
const b9 = (args: string[]): Promise<CliResult> => runB9(args, env);
const storeOf = (name: string) => join(dirname(agents.get(name)!.agent.agent.configPath), "models");
/** The converted directories a machine keeps for vLLM, as their b9-conversion.json says. */
const kept = (name: string) => {
  const root = join(storeOf(name), "safetensors");
  return existsSync(root)
    ? readdirSync(root)
        .filter((d) => d.startsWith("sha256-"))
        .map((d) => ({
          dir: join(root, d),
          ...JSON.parse(readFileSync(join(root, d, "b9-conversion.json"), "utf8")),
        }))
    : [];
};

async function gpuMachine(name: string, converter: string | undefined): Promise<void> {
  const bin = await stubPath();
  const record = join(tempDir("b9-vllm-record-"), "record.json");
  await stub(
    bin,
    "vllm",
    `#!/bin/sh\nexec '${testPython()}' '${join(standIns, "fake_openai_engine.py")}' "$@"\n`,
  );
  await stub(bin, "nvidia-smi", printing(h100));
  const agent = await startModelAgent(gw, {
    name,
    env: {
      PATH: `${bin}:${process.env.PATH}`,
      FAKE_ENGINE_RECORD: record,
      BETA9_CONVERT_PYTHON: converter,
    },
  });
  agents.set(name, { agent, record });
  await waitMachineReady(gw, name);
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  env = cliEnv(gw);
  await gpuMachine("converter", testConverterPython());
  await gpuMachine("bare", undefined);
}, 180_000);

afterAll(async () => {
  for (const { agent } of agents.values()) await agent.agent.proc.stop();
  await gw?.proc.stop();
});

describe("a GGUF deployment for vLLM on two machines", { timeout: 360_000 }, () => {
  it("is dequantised once: the machine without a converter copies the other's safetensors directory", async () => {
    const deployed = await b9([
      "model",
      "deploy",
      "smol-vllm",
      "--source",
      testModelPath(),
      "--engine",
      "vllm",
      "--min",
      "3",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);
    // The gateway keeps the minimum as far as it can: one replica on each machine, whichever it tries first.
    await waitFor(
      async () => {
        const ps = (await b9(["model", "ps"])).stdout;
        return /smol-vllm on converter: /.test(ps) && /smol-vllm on bare: /.test(ps);
      },
      { what: "smol-vllm placed on both machines", timeoutMs: 300_000, intervalMs: 1_000 },
    );
    const [made] = kept("converter");
    const [copy] = kept("bare");
    expect(made.converted_from).toMatchObject({
      format: "gguf",
      target: "float16",
      converter: { tool: "transformers" },
    });
    expect(made.converted_from.converted_on).toBeUndefined();
    // The same directory, by the hash over its files, with where it was made.
    expect(copy).toMatchObject({
      sha256: made.sha256,
      files: made.files,
      converted_from: { ...made.converted_from, converted_on: "converter" },
    });
    for (const f of made.files as { name: string; size: number }[])
      expect(readFileSync(join(copy.dir, f.name)).equals(readFileSync(join(made.dir, f.name)))).toBe(true);
    // vLLM on the bare machine serves the copy.
    const argv = (JSON.parse(readFileSync(agents.get("bare")!.record, "utf8")) as { argv: string[] }).argv;
    expect(argv.slice(0, 2)).toEqual(["serve", copy.dir]);
    expect(readdirSync(join(storeOf("bare"), "safetensors")).filter((d) => d.startsWith(".tmp"))).toEqual([]);
    const ps = await b9(["model", "ps"]);
    expect(ps.stdout).toMatch(
      /smol-vllm on bare: .*serves GGUF Q4_1 on vllm as safetensors \(the deployment names it; no engine there serves gguf, so the machine copied converter's conversion through the gateway \(sha256 checked\) rather than converting it again\)/,
    );
  });

  it("after a gateway restart, a third machine still copies: the gateway asks the replicas what they hold", async () => {
    const { dataDir, port } = gw;
    await gw.proc.stop();
    gw = await startGateway({ dataDir, port, args: ["--heartbeat-interval", "1s"] });
    env = cliEnv(gw);
    await waitMachineReady(gw, "converter", 90_000);
    await waitMachineReady(gw, "bare", 90_000);
    await gpuMachine("bare2", undefined);
    await waitFor(async () => (await b9(["model", "ps"])).stdout.includes("smol-vllm on bare2: "), {
      what: "smol-vllm placed on bare2",
      timeoutMs: 180_000,
      intervalMs: 1_000,
    });
    const [made] = kept("converter");
    expect(kept("bare2")).toEqual([
      expect.objectContaining({
        sha256: made.sha256,
        converted_from: { ...made.converted_from, converted_on: "converter" },
      }),
    ]);
  });
});
