/**
 * Quantisation bench: the test model (SmolLM2-135M Q4_1) quantised by the agent's converter
 * (packages/agent/src/models/convert/quantize.ts) beside the same llama-quantize run by hand, so the
 * wrapper's cost shows. Wall time and the tool's peak RSS for each. See README.md beside this file.
 *
 *   npx node bench/formats/quantize.ts [--runs 3] [--type Q8_0] [--threads 2]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import * as llamaTools from "../../packages/agent/src/models/convert/llama-tools.ts";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import { quantizeModel } from "../../packages/agent/src/models/convert/quantize.ts";
// biome-ignore lint/style/noRestrictedImports: the agent exports no module; the bench times its converter in this process
import { ModelStore } from "../../packages/agent/src/models/store.ts";
import { children, statusKb } from "../common/procfs.ts";
import { machineLine, median, ms, out, table } from "../common/stats.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    type: { type: "string", default: "Q8_0" },
    threads: { type: "string", default: "2" },
  },
});
const runs = Number(values.runs);
const type = values.type.toUpperCase();
const threads = Number(values.threads);
const model =
  process.env.BETA9_TEST_MODEL ?? path.join(ROOT, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "b9-bench-formats-"));
const store = new ModelStore({ dir, allowedDirs: [path.dirname(model)], localImport: "in-place" });
await store.pull("smol", model);
const llama = await llamaTools.findLlamaSource();
let t = performance.now();
const tool = await llamaTools.ensureQuantizeTool(llama, { toolsDir: path.join(dir, "tools") });
const buildMs = performance.now() - t;

/** The tool's peak RSS, read from /proc while the converter runs it (the last ~50 ms may be missed). */
function watchTool(): () => number {
  let peakKb = 0;
  const timer = setInterval(() => {
    for (const c of children(process.pid))
      if (c.args.includes("llama-quantize")) peakKb = Math.max(peakKb, statusKb(c.pid, "VmHWM") || 0);
  }, 50);
  return () => {
    clearInterval(timer);
    return peakKb;
  };
}

const hand: { ms: number; kb: number }[] = [];
const wrapped: { ms: number; kb: number }[] = [];
let size = 0;
for (let i = 0; i < runs; i++) {
  const dest = path.join(dir, "by-hand.gguf");
  t = performance.now();
  const run = spawnSync(
    "/usr/bin/time",
    ["-f", "%M", tool, "--allow-requantize", model, dest, type, String(threads)],
    {
      encoding: "utf8",
    },
  );
  if (run.status !== 0) throw new Error(`llama-quantize by hand failed: ${run.stderr.slice(-500)}`);
  // GNU time's %M (peak RSS in kB) is the last line it writes to stderr.
  const said = run.stderr;
  hand.push({ ms: performance.now() - t, kb: Number(said.trim().split("\n").at(-1)) });
  fs.rmSync(dest);

  const stop = watchTool();
  t = performance.now();
  const record = await quantizeModel(store, { from: "smol", name: "smol-q", type, threads, llama });
  wrapped.push({ ms: performance.now() - t, kb: stop() });
  size = record.size;
  // Removed, so the next run converts again instead of reusing this one.
  await store.remove("smol-q");
}

const row = (label: string, xs: { ms: number; kb: number }[]) => [
  label,
  ms(median(xs.map((x) => x.ms))),
  ms(Math.min(...xs.map((x) => x.ms))),
  String(Math.round(Math.max(...xs.map((x) => x.kb)) / 1024)),
];
out(`${machineLine()}\n`);
out(
  `${llamaTools.llamaVersion(llama)}; llama-quantize built in ${ms(buildMs)} ms; ${runs} runs, ${threads} threads\n`,
);
out(
  `SmolLM2-135M ${(fs.statSync(model).size / 2 ** 20).toFixed(1)} MiB Q4_1 → ${type} ${(size / 2 ** 20).toFixed(1)} MiB\n\n`,
);
out(
  table(
    ["run", "median ms", "min ms", "peak RSS MiB"],
    [row("llama-quantize by hand", hand), row("agent converter (+ sha256, record)", wrapped)],
  ),
);
fs.rmSync(dir, { recursive: true, force: true });
