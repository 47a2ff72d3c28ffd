/**
 * `--quantize` through the gateway: the test model (SmolLM2-135M Q4_1) converted on a real agent by a
 * deployment's pull (POST /api/v1/deployments/NAME/pull, what `b9 model pull` calls), beside the same
 * llama-quantize binary run by hand on the same file, alternating. The conversion step is timed from
 * the agent's first conversion event to the pull's last line, as the gateway streams them; the whole
 * pull (the source's import included) beside it. See README.md beside this file.
 *
 *   npx node bench/formats/gateway.ts [--runs 5] [--type Q8_0]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { LineSplitter } from "@beta9/http";
import { startGateway, startModelAgent, testModelPath } from "@beta9/test-utils";
import { children, statusKb } from "../common/procfs.ts";
import { machineLine, median, ms, out, ratio, table } from "../common/stats.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, type: { type: "string", default: "Q8_0" } },
});
const runs = Number(values.runs);
const type = values.type.toUpperCase();
const model = testModelPath();
const NAME = "bench-q";

const gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
const worker = await startModelAgent(gw);
const agentPid = worker.agent.proc.child.pid!;
const store = path.join(path.dirname(worker.agent.configPath), "models");

/** The tool's peak RSS while the agent runs it, read from /proc every 50 ms. */
function watchTool(): () => number {
  let peakKb = 0;
  const timer = setInterval(() => {
    for (const c of children(agentPid))
      if (c.args.includes("llama-quantize")) peakKb = Math.max(peakKb, statusKb(c.pid, "VmHWM") || 0);
  }, 50);
  return () => {
    clearInterval(timer);
    return peakKb;
  };
}

/** One pull through the gateway: total ms, and ms from the first conversion event to the last line. */
async function pullThroughGateway(): Promise<{ total: number; convert: number; kb: number }> {
  const stop = watchTool();
  const t0 = performance.now();
  const res = await fetch(`${gw.url}/api/v1/deployments/${NAME}/pull`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.adminKey}` },
  });
  if (!res.ok || !res.body) throw new Error(`pull answered ${res.status}: ${await res.text()}`);
  let converting: number | undefined;
  let last: { status: string; error?: { message: string } } | undefined;
  const lines = new LineSplitter(1024 * 1024);
  for await (const chunk of res.body) {
    for (const line of lines.push(Buffer.from(chunk))) {
      last = JSON.parse(line);
      if (converting === undefined && /llama-quantize|quantizing/.test(last?.status ?? ""))
        converting = performance.now();
    }
  }
  const end = performance.now();
  const kb = stop();
  if (last?.status !== "success") throw new Error(`pull ended with ${JSON.stringify(last)}`);
  if (converting === undefined) throw new Error("the pull converted nothing (reused a conversion?)");
  return { total: end - t0, convert: end - converting, kb };
}

/** The converted model leaves the machine's store, so the next pull converts again. */
function forgetConversion(): void {
  const record = JSON.parse(fs.readFileSync(path.join(store, "models", `${NAME}.json`), "utf8"));
  fs.rmSync(path.join(store, "models", `${NAME}.json`));
  fs.rmSync(path.join(store, "blobs", `sha256-${record.sha256}`), { force: true });
}

const created = await gw.api("POST", "/api/v1/deployments", { name: NAME, source: model, quantize: type });
if (created.status !== 201)
  throw new Error(`deploy answered ${created.status}: ${JSON.stringify(created.body)}`);
// The first pull builds llama-quantize on the machine: not timed.
const first = await pullThroughGateway();
forgetConversion();
const tool = fs
  .readdirSync(path.join(store, "tools"))
  .map((d) => path.join(store, "tools", d, "llama-quantize"))
  .find((p) => fs.existsSync(p));
if (!tool) throw new Error(`no llama-quantize under ${store}/tools`);

const hand: { ms: number; kb: number }[] = [];
const gateway: { total: number; convert: number; kb: number }[] = [];
// As many threads as the agent gives the tool.
const threads = String(Math.max(1, os.availableParallelism()));
for (let i = 0; i < runs; i++) {
  const dest = path.join(store, "by-hand.gguf");
  const t = performance.now();
  const run = spawnSync(
    "/usr/bin/time",
    ["-f", "%M", tool, "--allow-requantize", model, dest, type, threads],
    {
      encoding: "utf8",
    },
  );
  if (run.status !== 0) throw new Error(`llama-quantize by hand failed: ${run.stderr.slice(-500)}`);
  hand.push({ ms: performance.now() - t, kb: Number(run.stderr.trim().split("\n").at(-1)) });
  fs.rmSync(dest);

  gateway.push(await pullThroughGateway());
  forgetConversion();
}

const handMs = median(hand.map((x) => x.ms));
const convertMs = median(gateway.map((x) => x.convert));
const peak = (kbs: number[]) => String(Math.round(Math.max(...kbs) / 1024));
out(`${machineLine()}\n`);
out(
  `SmolLM2-135M Q4_1 → ${type}, ${runs} runs alternating, ${threads} threads; first pull (builds llama-quantize) ${ms(first.total)} ms\n\n`,
);
out(
  table(
    ["run", "median ms", "min ms", "ratio to by hand", "tool peak RSS MiB"],
    [
      [
        "llama-quantize by hand",
        ms(handMs),
        ms(Math.min(...hand.map((x) => x.ms))),
        "1.00×",
        peak(hand.map((x) => x.kb)),
      ],
      [
        "conversion step through the gateway",
        ms(convertMs),
        ms(Math.min(...gateway.map((x) => x.convert))),
        ratio(convertMs, handMs),
        peak(gateway.map((x) => x.kb)),
      ],
      [
        "whole b9 model pull (source import + conversion)",
        ms(median(gateway.map((x) => x.total))),
        ms(Math.min(...gateway.map((x) => x.total))),
        ratio(median(gateway.map((x) => x.total)), handMs),
        "",
      ],
    ],
  ),
);
await worker.agent.proc.stop();
await gw.proc.stop();
