/**
 * The LiteLLM proxy in front of the canned upstream, for bench/gateway/run.ts: its own CLI, one
 * worker, a config naming the upstream as an OpenAI-compatible model, a master key (LiteLLM refuses to
 * start without one), the local model-cost map (no network), and uvicorn's per-request access log off
 * (nginx and Beta9 write none either). Installed by hand into a virtualenv; see README.md.
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { benchDir, freePort, HOST, spawnChild, stopChild, untilAnswering } from "./common.ts";

export const LITELLM = path.resolve(import.meta.dirname, "../../.cache/bench-litellm/bin/litellm");
const START_TIMEOUT_MS = 180_000;

export interface LiteLLM {
  proc: ChildProcess;
  port: number;
  key: string;
  version: string;
}

/** The running LiteLLM proxy, or why there is none. */
export async function startLiteLLM(
  bin: string,
  model: string,
  upstreamPort: number,
): Promise<LiteLLM | string> {
  if (!fs.existsSync(bin)) return `${bin} not found (see README.md: LiteLLM)`;
  const dir = benchDir("b9-bench-litellm-");
  const port = await freePort();
  const key = `sk-${randomBytes(24).toString("hex")}`;
  const config = path.join(dir, "config.yaml");
  fs.writeFileSync(
    config,
    `model_list:
  - model_name: ${model}
    litellm_params:
      model: openai/${model}
      api_base: http://${HOST}:${upstreamPort}/v1
      api_key: none
`,
  );
  const logConfig = path.join(dir, "log.json");
  fs.writeFileSync(
    logConfig,
    JSON.stringify({
      version: 1,
      disable_existing_loggers: false,
      formatters: { plain: { format: "%(levelname)s %(name)s %(message)s" } },
      handlers: { err: { class: "logging.StreamHandler", formatter: "plain", stream: "ext://sys.stderr" } },
      loggers: {
        uvicorn: { handlers: ["err"], level: "WARNING" },
        "uvicorn.access": { handlers: ["err"], level: "WARNING", propagate: false },
      },
    }),
  );
  const venvBin = path.dirname(bin);
  const proc = spawnChild(
    bin,
    [
      "--config",
      config,
      "--host",
      HOST,
      "--port",
      String(port),
      "--num_workers",
      "1",
      "--log_config",
      logConfig,
    ],
    {
      PATH: `${venvBin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      HOME: process.env.HOME ?? dir,
      LITELLM_MASTER_KEY: key,
      LITELLM_LOCAL_MODEL_COST_MAP: "True",
      LITELLM_LOG: "ERROR",
    },
  );
  let tail = "";
  const keep = (b: Buffer) => {
    tail = (tail + b.toString()).slice(-4000);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  try {
    await untilAnswering(`http://${HOST}:${port}/health/liveliness`, {
      procs: [proc],
      name: "litellm",
      said: () => tail,
      timeoutMs: START_TIMEOUT_MS,
      intervalMs: 500,
    });
  } catch (e) {
    await stopChild(proc);
    return `LiteLLM did not start: ${(e as Error).message.slice(0, 2000)}`;
  }
  const python = path.join(venvBin, "python");
  let version = "?";
  try {
    version = execFileSync(python, ["-c", "import importlib.metadata as m; print(m.version('litellm'))"], {
      encoding: "utf8",
    }).trim();
  } catch {}
  return { proc, port, key, version };
}
