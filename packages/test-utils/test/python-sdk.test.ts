import { dirname, resolve } from "node:path";
import {
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testModelPath,
  testPython,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { noProxy, runCommand } from "./run-command.ts";

/*
 * The Python SDK (sdk/python, installed editable in the test virtualenv by scripts/python-env) against
 * a real b9gateway and a real b9agent serving SmolLM2 on its builtin engine: pytest runs
 * sdk/python/tests with the stack described in its environment (see sdk/python/tests/conftest.py).
 * The fork's own SDK examples (sdk/python/tests/fork) run there too, also against the real nginx
 * standing in for a plain Ollama (pytest starts it). The agent also runs the SDK's functions as jobs:
 * uv, which builds their Python environments, comes with the test virtualenv.
 */

const ROOT = resolve(import.meta.dirname, "../../..");
const MODEL = "smollm2";
let gw: GatewayProc;
let worker: ModelAgent;
let inferenceKey: string;

beforeAll(async () => {
  testPython(); // fail early, with the hint, when the virtualenv is not set up
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  worker = await startModelAgent(gw, { env: { PATH: `${process.env.PATH}:${dirname(testPython())}` } });
  await worker.serve(MODEL);
  inferenceKey = (
    await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "python-sdk", scopes: ["inference"] })
  ).body.key;
  await waitFor(
    async () => {
      const res = await fetch(`${gw.url}/v1/models`, {
        headers: { authorization: `Bearer ${inferenceKey}` },
      });
      return res.ok && ((await res.json()) as { data: { id: string }[] }).data.some((m) => m.id === MODEL);
    },
    { what: `the gateway to list ${MODEL}`, timeoutMs: 20_000 },
  );
}, 120_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

describe("the Python SDK against the real gateway and agent", () => {
  it("passes its pytest suite: chat, stream, generate, embed, models, load/unload, health, errors, async, the fork's examples, functions as jobs", async () => {
    const run = await runCommand(
      testPython(),
      ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", "sdk/python/tests"],
      {
        cwd: ROOT,
        timeoutMs: 300_000,
        // Keys through the environment, not the process list.
        env: {
          BETA9_TEST_GATEWAY_URL: gw.url,
          BETA9_TEST_INFERENCE_KEY: inferenceKey,
          BETA9_TEST_ADMIN_KEY: gw.adminKey,
          BETA9_TEST_AGENT_URL: worker.agent.controlUrl,
          BETA9_TEST_AGENT_TOKEN: worker.token,
          BETA9_TEST_SERVED_MODEL: MODEL,
          BETA9_TEST_MODEL: testModelPath(),
          PYTHONDONTWRITEBYTECODE: "1",
          NO_PROXY: noProxy(),
        },
      },
    );
    const output = `${run.stdout}\n${run.stderr}${serverErrors()}`;
    const summary = run.stdout.trim().split("\n").at(-1) ?? "";
    expect(run.code, output).toBe(0);
    expect(summary, output).toMatch(/\b\d+ passed\b/);
    // Every stack test ran: a skip would mean the stack was not handed over.
    expect(summary, output).not.toMatch(/skipped|failed|error/);
    expect(Number(/(\d+) passed/.exec(summary)?.[1]), output).toBeGreaterThan(120);
  }, 320_000);
});

/** The gateway's and agent's error log lines, to explain a failed check. */
function serverErrors(): string {
  const lines = [gw, worker.agent].flatMap((p) =>
    p.proc
      .logs()
      .filter((e) => Number(e.level) >= 50)
      .map((e) => JSON.stringify(e)),
  );
  return lines.length ? `\nserver errors:\n${lines.join("\n")}` : "";
}
