import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import {
  Cluster,
  type ClusterGateway,
  type FileServer,
  servePythonFolder,
  tempDir,
  testPython,
  type Worker,
  waitFor,
} from "@beta9/test-utils";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { clusterSkipReason, GATEWAY_ARGS, useCluster } from "./fixture.ts";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * The Python SDK's functions on a cluster of a gateway and two agents, each its own network host
 * that cannot reach PyPI: the agents' owners point jobs.package_index at a package index inside the
 * cluster (python3 -m http.server on the client host, serving wheels downloaded here for this
 * machine's Python), and `.remote` of a numpy function and `.map` over 20 inputs come back right and
 * in order, from a user on the client host. Agents run jobs with the native runner (the sandboxes
 * are the agent's own tests).
 */
const unsupported = clusterSkipReason();
process.env.B9AGENT_JOB_RUNNER = "native";
// uv, which builds the jobs' environments, is in the test virtualenv.
if (!unsupported) process.env.PATH = `${dirname(testPython())}:${process.env.PATH}`;

const WHEELS = resolve(import.meta.dirname, "../../../../.cache/job-wheels");

/**
 * A PEP 503 simple index in a fresh folder (simple/PROJECT/WHEEL, which http.server lists as links):
 * numpy and the caller's cloudpickle, downloaded (once, kept in .cache/) for the test's Python.
 */
function simpleIndex(): string {
  const cloudpickle = execFileSync(
    testPython(),
    ["-c", "import cloudpickle; print(cloudpickle.__version__)"],
    {
      encoding: "utf8",
    },
  ).trim();
  mkdirSync(WHEELS, { recursive: true });
  execFileSync(
    testPython(),
    [
      "-m",
      "pip",
      "download",
      "--quiet",
      "--only-binary=:all:",
      "--dest",
      WHEELS,
      "numpy",
      `cloudpickle==${cloudpickle}`,
    ],
    { stdio: "inherit" },
  );
  const root = tempDir("b9-index-");
  for (const wheel of readdirSync(WHEELS).filter((f) => f.endsWith(".whl"))) {
    const project = wheel
      .split("-")[0]!
      .replace(/[-_.]+/g, "-")
      .toLowerCase();
    mkdirSync(join(root, "simple", project), { recursive: true });
    symlinkSync(join(WHEELS, wheel), join(root, "simple", project, wheel));
  }
  return root;
}

/** The user's program: the SDK on the client host, against the gateway's address in the cluster. */
const PROGRAM = `
import json, sys
from beta9 import Client, Image, function

def norm(xs):
    import numpy as np
    return float(np.linalg.norm(np.asarray(xs, dtype=float)))

def square(x):
    import numpy as np
    return int(np.square(np.int64(x)))

host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
numpy = Image(packages=["numpy"])
with Client(host=host, port=port, api_key=key) as client:
    remote = function(image=numpy, timeout=600, retries=0, client=client)(norm).remote([3, 4])
    mapped = function(image=numpy, timeout=600, retries=0, client=client)(square).map(list(range(20)))
print(json.dumps({"remote": remote, "map": mapped}))
`;

describe.skipIf(unsupported)("Python functions on a cluster without PyPI", () => {
  let cluster: Cluster;
  let gw: ClusterGateway;
  const workers: Worker[] = [];
  let index: FileServer;
  let key: string;

  useCluster(
    () => cluster,
    async () => {
      const root = simpleIndex();
      cluster = Cluster.create({ workers: 2 });
      index = await servePythonFolder(root, { host: cluster.client.address, ...cluster.client.launch });
      gw = await cluster.startGateway({ args: GATEWAY_ARGS });
      for (const host of cluster.workerHosts) {
        const worker = await cluster.joinWorker(gw, host, { start: false });
        const cfg = YAML.parse(readFileSync(worker.configPath, "utf8")) as Record<string, unknown>;
        cfg.jobs = { package_index: `http://${cluster.client.address}:${index.port}/simple` };
        writeFileSync(worker.configPath, YAML.stringify(cfg), { mode: 0o600 });
        await cluster.startAgent(worker);
        workers.push(worker);
      }
      await waitFor(
        async () => {
          const list = (await gw.api<{ machines: Json[] }>("GET", "/api/v1/machines")).body.machines;
          return list.filter((m) => m.status === "READY").length === 2;
        },
        { what: "both agents READY", timeoutMs: 30_000 },
      );
      key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body
        .key;
    },
    () => index?.stop() ?? Promise.resolve(),
  );

  it(".remote of a numpy function and .map over 20 inputs, in order, built from the cluster's index", async () => {
    const { host, port } = new URL(gw.listenUrl);
    const [command, ...before] = [...cluster.client.launch.prefix, testPython()];
    const out = await new Promise<string>((done, fail) =>
      execFile(
        command!,
        [...before, "-c", PROGRAM, host, port, key],
        { encoding: "utf8", timeout: 480_000 },
        (err, stdout, stderr) => (err ? fail(new Error(`${err.message}\n${stderr}`)) : done(stdout)),
      ),
    );
    const said = JSON.parse(out.trim().split("\n").at(-1)!);
    expect(said.remote).toBe(5);
    expect(said.map).toEqual(Array.from({ length: 20 }, (_, i) => i * i));
    // 21 jobs, spread over both machines: each built numpy's environment from the index in the cluster.
    const jobs = (await gw.api<{ jobs: Json[] }>("GET", "/api/v1/jobs?limit=100", undefined, key)).body.jobs;
    expect(jobs.filter((j) => j.state === "SUCCEEDED")).toHaveLength(21);
    expect(new Set(jobs.map((j) => j.machine_id)).size).toBe(2);
  }, 600_000);
});
