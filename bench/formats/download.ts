/**
 * The agent's download (`packages/agent/src/models/download.ts`: resumable, hashed as it is written)
 * of one file from python's http.server, this checkout's beside another's (`--before DIR`, e.g. a
 * `git worktree` of an earlier commit), alternating, each in a child process of its own so its CPU
 * time is its own. Every pull, and every copy of a conversion between machines, goes through it.
 *
 *   npx node bench/formats/download.ts --before /tmp/wt [--runs 6] [--file PATH]
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { startPythonFileServer, tempDir, testModelPath } from "@beta9/test-utils";
import { machineLine, median, ms, out, ratio, table } from "../common/stats.ts";

const { values } = parseArgs({
  options: {
    before: { type: "string" },
    runs: { type: "string", default: "6" },
    file: { type: "string" },
    child: { type: "string" },
    url: { type: "string" },
  },
});

if (values.child) {
  // One download in this process: wall ms and this process's CPU ms, as JSON on stdout.
  const { download } = (await import(path.join(values.child, "packages/agent/src/models/download.ts"))) as {
    download: (url: string, dest: string, opts: object) => Promise<{ sha256: string }>;
  };
  const dest = path.join(tempDir("b9-bench-dl-"), "file");
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await download(values.url!, dest, { checkDiskSpace: false });
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  fs.rmSync(path.dirname(dest), { recursive: true, force: true });
  process.stdout.write(JSON.stringify({ wall, cpu: (cpu.user + cpu.system) / 1000 }));
  process.exit(0);
}

if (!values.before) throw new Error("give --before DIR: another checkout to compare with");
const file = values.file ?? testModelPath();
const files = await startPythonFileServer([file]);
const url = files.url(path.basename(file));
const checkouts = { before: path.resolve(values.before), after: path.resolve(import.meta.dirname, "../..") };
const results: Record<"before" | "after", { wall: number; cpu: number }[]> = { before: [], after: [] };
try {
  for (let i = 0; i < Number(values.runs); i++) {
    for (const which of i % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const)) {
      const run = spawnSync(
        process.execPath,
        [import.meta.filename, "--child", checkouts[which], "--url", url],
        {
          encoding: "utf8",
        },
      );
      if (run.status !== 0) throw new Error(`${which}: ${run.stderr.slice(-800)}`);
      results[which].push(JSON.parse(run.stdout));
    }
  }
} finally {
  await files.stop();
}
const mib = fs.statSync(file).size / 1024 ** 2;
const row = (which: "before" | "after") => {
  const wall = median(results[which].map((r) => r.wall));
  const cpu = median(results[which].map((r) => r.cpu));
  return [
    which,
    ms(wall),
    ratio(wall, median(results.before.map((r) => r.wall))),
    ms(cpu),
    ratio(cpu, median(results.before.map((r) => r.cpu))),
    (mib / (wall / 1000)).toFixed(0),
  ];
};
out(
  `${machineLine()}\n${path.basename(file)} (${mib.toFixed(1)} MiB), ${values.runs} runs each, alternating\n\n`,
);
out(
  table(
    ["download.ts", "wall ms", "ratio", "CPU ms (process)", "ratio", "MiB/s"],
    [row("before"), row("after")],
  ),
);
