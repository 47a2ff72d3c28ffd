/**
 * safetensors ↔ GGUF bench: the test model (SmolLM2-135M Q4_1) dequantised to a safetensors repository
 * and converted back to GGUF F16 by the agent's converters (packages/agent/src/models/convert/
 * gguf-to-hf.ts, hf-to-gguf.ts) beside the very same Python commands run by hand, alternating. Wall
 * time and the tool's peak RSS for each. See README.md beside this file.
 *
 *   BETA9_CONVERT_PYTHON=$(scripts/convert-env) npx node bench/formats/hf.ts [--runs 3]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import { ggufToSafetensors, RUN_DEQUANTIZE } from "../../packages/agent/src/models/convert/gguf-to-hf.ts";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import { RUN_CONVERT, safetensorsToGguf } from "../../packages/agent/src/models/convert/hf-to-gguf.ts";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import { ensureConvertScript } from "../../packages/agent/src/models/convert/hf-tools.ts";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import * as llamaTools from "../../packages/agent/src/models/convert/llama-tools.ts";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import { ModelStore } from "../../packages/agent/src/models/store.ts";
import { processTree, statusKb } from "../common/procfs.ts";
import { machineLine, median, ms, out, table } from "../common/stats.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const python = process.env.BETA9_CONVERT_PYTHON;
if (!python) throw new Error("set BETA9_CONVERT_PYTHON to the python scripts/convert-env prints");
const model =
  process.env.BETA9_TEST_MODEL ?? path.join(ROOT, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b9-bench-hf-"));
const store = new ModelStore({ dir, allowedDirs: [path.dirname(model)], localImport: "in-place" });
await store.pull("smol", model);
const llama = await llamaTools.findLlamaSource();
const script = await ensureConvertScript(llama, { toolsDir: path.join(dir, "tools") });

/** The converter's children's peak RSS, read from /proc while it runs them (the last ~100 ms may be missed). */
function watchTool(): () => number {
  let peakKb = 0;
  const timer = setInterval(() => {
    for (const pid of processTree(process.pid))
      if (pid !== process.pid) peakKb = Math.max(peakKb, statusKb(pid, "VmHWM") || 0);
  }, 100);
  return () => {
    clearInterval(timer);
    return peakKb;
  };
}

/** The same command by hand, under GNU time: wall ms and peak RSS kB (%M, its last line on stderr). */
function byHand(args: string[]): { ms: number; kb: number } {
  const t = performance.now();
  const run = spawnSync("/usr/bin/time", ["-f", "%M", python!, ...args], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`by hand failed: ${run.stderr.slice(-800)}`);
  return { ms: performance.now() - t, kb: Number(run.stderr.trim().split("\n").at(-1)) };
}

type Run = { ms: number; kb: number };
const toHfHand: Run[] = [];
const toHfWrapped: Run[] = [];
const toGgufHand: Run[] = [];
const toGgufWrapped: Run[] = [];
let repoBytes = 0;
let ggufBytes = 0;
for (let i = 0; i < runs; i++) {
  const handDir = path.join(dir, "by-hand-hf");
  toHfHand.push(byHand(["-c", RUN_DEQUANTIZE, model, handDir, "float16"]));

  let stop = watchTool();
  let t = performance.now();
  const repo = await ggufToSafetensors(store, { from: "smol", python });
  toHfWrapped.push({ ms: performance.now() - t, kb: stop() });
  repoBytes = repo.files.reduce((n, f) => n + f.size, 0);

  const handGguf = path.join(dir, "by-hand.gguf");
  toGgufHand.push(byHand(["-c", RUN_CONVERT, script, handDir, "--outfile", handGguf, "--outtype", "f16"]));
  fs.rmSync(handGguf);
  fs.rmSync(handDir, { recursive: true });

  stop = watchTool();
  t = performance.now();
  const record = await safetensorsToGguf(store, { dir: repo.dir, name: "smol-f16", python, llama });
  toGgufWrapped.push({ ms: performance.now() - t, kb: stop() });
  ggufBytes = record.size;
  // Removed, so the next run converts again instead of reusing these.
  await store.remove("smol-f16");
  fs.rmSync(repo.dir, { recursive: true });
}

const row = (label: string, xs: Run[]) => [
  label,
  ms(median(xs.map((x) => x.ms))),
  ms(Math.min(...xs.map((x) => x.ms))),
  String(Math.round(Math.max(...xs.map((x) => x.kb)) / 1024)),
];
out(
  `${machineLine()}\nload average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}\n`,
);
out(`${llamaTools.llamaVersion(llama)}; ${runs} runs\n`);
out(
  `SmolLM2-135M ${(fs.statSync(model).size / 2 ** 20).toFixed(1)} MiB Q4_1 → safetensors float16 ${(repoBytes / 2 ** 20).toFixed(1)} MiB → GGUF F16 ${(ggufBytes / 2 ** 20).toFixed(1)} MiB\n\n`,
);
out(
  table(
    ["run", "median ms", "min ms", "peak RSS MiB"],
    [
      row("GGUF → safetensors by hand", toHfHand),
      row("GGUF → safetensors, agent converter (+ sha256)", toHfWrapped),
      row("safetensors → GGUF by hand", toGgufHand),
      row("safetensors → GGUF, agent converter (+ checks, sha256, record)", toGgufWrapped),
    ],
  ),
);
fs.rmSync(dir, { recursive: true, force: true });
