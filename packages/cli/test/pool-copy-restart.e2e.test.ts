import {
  builtQuantizeTool,
  type CliResult,
  cliEnv,
  type GatewayProc,
  type ModelAgent,
  runB9,
  startGateway,
  startModelAgent,
  storedRecord,
  testModelPath,
  waitFor,
  waitMachineReady,
} from "@beta9/test-utils";
import { afterAll, describe, expect, it } from "vitest";

/*
 * The gateway remembers who holds a conversion in memory only. Restarted, it asks the deployment's
 * replicas what they hold before a new machine converts: the new machine copies, as it would have
 * before the restart. The real gateway (restarted on its data dir and port), agents and CLI.
 */

const ARGS = ["--heartbeat-interval", "1s"];
let gw: GatewayProc | undefined;
const agents: ModelAgent[] = [];
const b9 = (args: string[]): Promise<CliResult> => runB9(args, cliEnv(gw!));
const onMachine = async (name: string) => (await b9(["model", "ps"])).stdout.includes(`smol-r on ${name}:`);

afterAll(async () => {
  for (const a of agents) await a.agent.proc.stop();
  await gw?.proc.stop();
});

describe("after a gateway restart", { timeout: 300_000 }, () => {
  it("a new machine copies the conversion a replica made before the restart", async () => {
    gw = await startGateway({ args: ARGS });
    const alpha = await startModelAgent(gw, { name: "alpha" });
    agents.push(alpha);
    await waitMachineReady(gw, "alpha");
    const deployed = await b9([
      "model",
      "deploy",
      "smol-r",
      "--source",
      testModelPath(),
      "--quantize",
      "Q8_0",
      "--min",
      "2",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);
    // The one machine there is converts and serves (the gateway keeps the minimum as far as it can).
    await waitFor(() => onMachine("alpha"), {
      what: "smol-r served on alpha",
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    expect(builtQuantizeTool(alpha.agent.configPath)).toBe(true);

    const { dataDir, port } = gw;
    await gw.proc.stop();
    gw = await startGateway({ dataDir, port, args: ARGS });
    await waitMachineReady(gw, "alpha", 90_000);
    const beta = await startModelAgent(gw, { name: "beta" });
    agents.push(beta);
    // The minimum is two: the gateway places the second replica on beta, which copies alpha's.
    await waitFor(() => onMachine("beta"), {
      what: "smol-r served on beta",
      timeoutMs: 180_000,
      intervalMs: 500,
    });
    const made = storedRecord(alpha.agent.configPath, "smol-r");
    expect(storedRecord(beta.agent.configPath, "smol-r")).toMatchObject({
      sha256: made.sha256,
      converted_from: { ...made.converted_from, converted_on: "alpha" },
    });
    expect(builtQuantizeTool(beta.agent.configPath)).toBe(false);
    expect((await b9(["model", "ps"])).stdout).toMatch(
      /smol-r on beta: .*quantized on alpha from Q4_1 .*, copied from there through the gateway \(sha256 checked\) rather than converted again/,
    );
  });
});
