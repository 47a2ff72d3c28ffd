import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { testPython } from "@beta9/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import type { Engine, ServedModel } from "./engine.ts";
import { ENGINE_KEY_ENV } from "./engine-key.ts";
import { SglangEngine } from "./sglang.ts";
import { oneH100 } from "./testing/machines.ts";
import { stub, stubPath } from "./testing/stub-path.ts";
import { VllmEngine } from "./vllm.ts";

/*
 * vLLM and SGLang need a GPU: a Python stand-in (testing/python, answering as the real servers
 * were recorded to) records the arguments, the command line /proc shows every local user and the
 * environment each engine is started with, so these tests check the key the agent gives them.
 */

const standIns = fileURLToPath(new URL("./testing/python", import.meta.url));
const qwen = { name: "qwen2.5-7b", format: "safetensors" as const, path: "/models/Qwen2.5-7B-Instruct" };

interface Record {
  argv: string[];
  cmdline: string[];
  env: { [name: string]: string };
}

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.shutdown()));
});

async function startRecorded(
  make: (dir: string, record: string) => Promise<Engine>,
): Promise<{ served: ServedModel; record: Record }> {
  const dir = await stubPath();
  const record = join(dir, "record.json");
  const engine = await make(dir, record);
  engines.push(engine);
  const served = await engine.start({ model: qwen, hardware: oneH100 });
  return { served, record: JSON.parse(await readFile(record, "utf8")) as Record };
}

function expectKeyOnlyInEnv(served: ServedModel, record: Record, key: string | undefined) {
  expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(served.authHeaders()).toEqual({ authorization: `Bearer ${key}` });
  expect(record.cmdline.join(" ")).not.toContain(key);
}

describe("engine keys, stand-ins recorded from the real vLLM and SGLang servers", () => {
  it("vLLM (stand-in): a new key each start in VLLM_API_KEY, never on its command line; the agent sends it", async () => {
    const vllm = (dir: string, record: string) =>
      stub(
        dir,
        "vllm",
        `#!/bin/sh\nexec '${testPython()}' '${join(standIns, "fake_openai_engine.py")}' "$@"\n`,
      ).then(
        () =>
          new VllmEngine({
            pathEnv: `${dir}:/usr/bin:/bin`,
            env: { FAKE_ENGINE_RECORD: record },
            probeIntervalMs: 50,
          }),
      );
    const first = await startRecorded(vllm);
    expectKeyOnlyInEnv(first.served, first.record, first.record.env.VLLM_API_KEY);
    expect(first.record.argv).not.toContain("--api-key");
    // The stand-in asks for the key on /v1/models as vLLM does: the name was confirmed with it.
    expect(first.served.upstreamModel).toBe("qwen2.5-7b");
    const second = await startRecorded(vllm);
    expect(second.record.env.VLLM_API_KEY).not.toBe(first.record.env.VLLM_API_KEY);
  });

  it("SGLang (stand-in for sglang.launch_server): the launcher moves the key from the environment into sys.argv, off /proc's command line", async () => {
    const { served, record } = await startRecorded(
      async (_dir, recordFile) =>
        new SglangEngine({
          binary: testPython(),
          env: { FAKE_ENGINE_RECORD: recordFile, PYTHONPATH: standIns },
          probeIntervalMs: 50,
        }),
    );
    const at = record.argv.indexOf("--api-key");
    expect(at).toBeGreaterThan(0);
    const key = record.argv[at + 1];
    expectKeyOnlyInEnv(served, record, key);
    // Taken out of the environment before SGLang starts its workers, which would inherit it.
    expect(record.env[ENGINE_KEY_ENV]).toBeUndefined();
    expect(record.cmdline.slice(1, 2)).toEqual(["-c"]);
    expect(await served.check()).toBe("serving");
  });
});
