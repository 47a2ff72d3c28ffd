/**
 * Jobs bench: what running a command as a job costs beside running it directly, on this machine, with
 * a real b9gateway and a real b9agent (the agent's default runner: bubblewrap when installed).
 *
 *   - first line: submission to the job's first log line at the client (logs followed), for a bare
 *     command and for one with a Python environment already built (uv, cached), beside spawning the
 *     same command directly;
 *   - log throughput: lines a second that reach a client following the logs of a job that prints
 *     them as fast as it can, beside reading the same program's stdout directly.
 *
 *   npx node bench/jobs/run.ts [--rounds 10] [--lines 100000] [--package six==1.17.0]
 *
 * Needs uv for the environment case (scripts/python-env puts it in .cache/venv; that folder goes on
 * the agent's PATH) and PyPI reachable for the first build. See README.md beside this file.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import type { CreateJob } from "@beta9/protocol";
import { Beta9Client } from "@beta9/sdk";
import { initAgent, startAgent, startGateway } from "@beta9/test-utils";
import { median, ms, out, table } from "../common/stats.ts";

const ROOT = resolve(import.meta.dirname, "../..");

function options() {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "10" },
      lines: { type: "string", default: "100000" },
      package: { type: "string", default: "six==1.17.0" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out("usage: npx node bench/jobs/run.ts [--rounds 10] [--lines 100000] [--package six==1.17.0]\n");
    process.exit(0);
  }
  const o = { rounds: Number(values.rounds), lines: Number(values.lines), pkg: values.package };
  if (!Number.isInteger(o.rounds) || o.rounds < 2 || o.rounds > 100) throw new Error("--rounds: 2 to 100");
  if (!Number.isInteger(o.lines) || o.lines < 1000 || o.lines > 10_000_000)
    throw new Error("--lines: 1000 to 10000000");
  return o;
}

/** ms from spawning `argv` to its first stdout line, and every line's count once it ends. */
async function direct(argv: string[]): Promise<{ firstMs: number; lines: number; totalMs: number }> {
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
  let firstMs = -1;
  let lines = 0;
  for await (const _ of createInterface({ input: child.stdout })) {
    if (firstMs < 0) firstMs = performance.now() - t0;
    lines++;
  }
  return { firstMs, lines, totalMs: performance.now() - t0 };
}

/** The same for a job: from the submission to its first log line, and all lines until it ends. */
async function asJob(
  b9: Beta9Client,
  spec: CreateJob,
): Promise<{ firstMs: number; lines: number; totalMs: number; state: string }> {
  const t0 = performance.now();
  const job = await b9.jobs.create(spec);
  let firstMs = -1;
  let lines = 0;
  for await (const line of b9.jobs.logs(job.id, { follow: true })) {
    // The program's own lines only: the agent's notes ("[b9] …") are not the command's output.
    if (line.stream !== "stdout" || line.line.startsWith("[b9]")) continue;
    if (firstMs < 0) firstMs = performance.now() - t0;
    lines++;
  }
  const totalMs = performance.now() - t0;
  const done = await b9.jobs.wait(job.id);
  return { firstMs, lines, totalMs, state: done.state };
}

async function main(): Promise<void> {
  const o = options();
  const venvBin = join(ROOT, ".cache/venv/bin");
  const gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const agentEnv = existsSync(join(venvBin, "uv")) ? { PATH: `${venvBin}:${process.env.PATH}` } : {};
  const agent = await startAgent(await initAgent(gw, { name: "bench" }), { env: agentEnv });
  try {
    const key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "bench", scopes: ["jobs"] }))
      .body.key;
    const b9 = new Beta9Client({ baseUrl: gw.url, apiKey: key });
    // The same interpreter both ways: the system's, which a sandboxed job sees (not a pyenv shim).
    const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const hello = [python, "-c", "print('ready')"];
    // With an environment, its own python3 comes first on the job's PATH.
    const helloInEnv = ["python3", "-c", "print('ready')"];

    out(`first line: ${o.rounds} rounds each, interleaved\n`);
    const env: CreateJob["environment"] = { packages: [o.pkg] };
    const build = await asJob(b9, { command: helloInEnv, environment: env });
    if (build.state !== "SUCCEEDED") throw new Error(`the environment job ended ${build.state}`);
    const rows = { direct: [] as number[], job: [] as number[], cached: [] as number[] };
    for (let i = 0; i < o.rounds; i++) {
      rows.direct.push((await direct(hello)).firstMs);
      rows.job.push((await asJob(b9, { command: hello })).firstMs);
      rows.cached.push((await asJob(b9, { command: helloInEnv, environment: env })).firstMs);
    }
    const base = median(rows.direct);
    out(
      table(
        ["path", "first line p50", "× direct"],
        [
          ["python directly", ms(base), "1.0"],
          ["job, no environment", ms(median(rows.job)), (median(rows.job) / base).toFixed(1)],
          [`job, ${o.pkg} (cached)`, ms(median(rows.cached)), (median(rows.cached) / base).toFixed(1)],
          [`  (its first build)`, ms(build.firstMs), (build.firstMs / base).toFixed(1)],
        ],
      ),
    );

    out(`\nlog throughput: ${o.lines} lines as fast as python prints them\n`);
    const flood = [python, "-c", `import sys\nfor i in range(${o.lines}): sys.stdout.write(f"{i}\\n")`];
    const d = await direct(flood);
    const j = await asJob(b9, { command: flood });
    const rate = (n: number, t: number) => Math.round(n / (t / 1000));
    out(
      table(
        ["path", "lines", "time", "lines/s", "× direct"],
        [
          ["stdout directly", String(d.lines), ms(d.totalMs), String(rate(d.lines, d.totalMs)), "1.0"],
          [
            "job, logs followed",
            String(j.lines),
            ms(j.totalMs),
            String(rate(j.lines, j.totalMs)),
            (rate(j.lines, j.totalMs) / rate(d.lines, d.totalMs)).toFixed(2),
          ],
        ],
      ),
    );
    if (j.lines < d.lines)
      out(
        `(the job's log kept ${j.lines} of ${d.lines} lines: the gateway keeps a job's first and last lines)\n`,
      );
  } finally {
    await agent.proc.stop();
    await gw.proc.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
