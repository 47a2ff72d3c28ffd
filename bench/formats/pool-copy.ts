/**
 * A conversion made once for the pool: what a machine placed after the first pays for the model, by
 * copying the first machine's conversion through the gateway, beside what it would pay otherwise, on
 * the same machine, alternating:
 *
 *   - plain download: the same converted bytes from python's http.server, sha256 checked (what any
 *     download of them costs; the copy's relay through two agent channels is measured against it),
 *   - convert here: the source from python's http.server, sha256 checked, then llama-quantize on it
 *     (what the machine did before the copy: fetch the source and convert).
 *
 * Each round a new agent joins (a machine that has nothing), and `POST /api/v1/deployments/NAME/pull`
 * (what `b9 model pull` calls) copies the conversion to it; timed from the gateway's "pulling on NEW"
 * line to its last line. See README.md beside this file.
 *
 *   npx node bench/formats/pool-copy.ts [--runs 5] [--type Q8_0]
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { LineSplitter } from "@beta9/http";
import {
  type ModelAgent,
  startGateway,
  startModelAgent,
  startPythonFileServer,
  tempDir,
  testModelPath,
} from "@beta9/test-utils";
import { Agent, fetch, setGlobalDispatcher } from "undici";
import { cpuMs } from "../common/procfs.ts";
import { machineLine, median, ms, out, ratio, table } from "../common/stats.ts";

// Every fetch here through the pinned undici: Node's own copy has a parser bug python's http.server trips.
setGlobalDispatcher(new Agent());

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, type: { type: "string", default: "Q8_0" } },
});
const runs = Number(values.runs);
const type = values.type.toUpperCase();
const source = testModelPath();
const NAME = "bench-pool";

const gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
const first = await startModelAgent(gw, { name: "first" });
const storeOf = (a: ModelAgent) => path.join(path.dirname(a.agent.configPath), "models");
const agents: ModelAgent[] = [first];

async function stopAll(): Promise<void> {
  for (const a of agents) await a.agent.proc.stop().catch(() => {});
  await gw.proc.stop().catch(() => {});
}
process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));
process.once("SIGTERM", () => void stopAll().then(() => process.exit(143)));

/** The deployment's pull through the gateway; ms from "pulling on <machine>" to the last line, and its lines. */
async function pull(machine: string): Promise<{ ms: number; statuses: string[] }> {
  const res = await fetch(`${gw.url}/api/v1/deployments/${NAME}/pull`, {
    method: "POST",
    headers: { authorization: `Bearer ${gw.adminKey}` },
  });
  if (!res.ok || !res.body) throw new Error(`pull answered ${res.status}: ${await res.text()}`);
  let started: number | undefined;
  const statuses: string[] = [];
  let last: { status: string; machine_name?: string } | undefined;
  const lines = new LineSplitter(1024 * 1024);
  for await (const chunk of res.body) {
    for (const line of lines.push(Buffer.from(chunk))) {
      last = JSON.parse(line);
      if (last?.status === `pulling on ${machine}`) started ??= performance.now();
      if (last?.machine_name === machine) statuses.push(last.status);
    }
  }
  const end = performance.now();
  if (last?.status !== "success") throw new Error(`pull ended with ${JSON.stringify(last)}`);
  return { ms: end - (started ?? end), statuses };
}

/** A plain download of `url` to a file, hashed as it is written, as the agent's downloads are. */
async function download(url: string, sha256: string): Promise<number> {
  const dest = path.join(tempDir("b9-bench-dl-"), "file");
  const t = performance.now();
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}`);
  const hash = createHash("sha256");
  const fh = await fs.promises.open(dest, "w");
  try {
    for await (const chunk of res.body) {
      hash.update(chunk);
      await fh.write(chunk);
    }
  } finally {
    await fh.close();
  }
  if (hash.digest("hex") !== sha256) throw new Error(`${url}: wrong sha256`);
  const took = performance.now() - t;
  fs.rmSync(path.dirname(dest), { recursive: true, force: true });
  return took;
}

try {
  const created = await gw.api("POST", "/api/v1/deployments", {
    name: NAME,
    source,
    quantize: type,
    min_replicas: 2,
  });
  if (created.status !== 201)
    throw new Error(`deploy answered ${created.status}: ${JSON.stringify(created.body)}`);
  // The first machine converts (and builds llama-quantize): not timed.
  const converted = await pull("first");
  if (!converted.statuses.some((s) => s.startsWith("quantizing")))
    throw new Error(`the first machine did not convert: ${converted.statuses.join("; ")}`);
  const record = JSON.parse(fs.readFileSync(path.join(storeOf(first), "models", `${NAME}.json`), "utf8"));
  const blob = path.join(storeOf(first), "blobs", `sha256-${record.sha256}`);
  const tool = fs
    .readdirSync(path.join(storeOf(first), "tools"))
    .map((d) => path.join(storeOf(first), "tools", d, "llama-quantize"))
    .find((p) => fs.existsSync(p));
  if (!tool) throw new Error("no llama-quantize in the first machine's store");
  const files = await startPythonFileServer([blob, source]);
  const threads = String(Math.max(1, os.availableParallelism()));
  const sourceSha = createHash("sha256").update(fs.readFileSync(source)).digest("hex");

  const plain: number[] = [];
  const copy: number[] = [];
  /** CPU ms each process spent on one copy: the holder's agent, the gateway, the new machine's agent. */
  const cpu = { holder: [] as number[], gateway: [] as number[], receiver: [] as number[] };
  const convert: number[] = [];
  for (let i = 0; i < runs; i++) {
    plain.push(await download(files.url(path.basename(blob)), record.sha256));

    const name = `next-${i + 1}`;
    const next = await startModelAgent(gw, { name });
    agents.push(next);
    const pids = {
      holder: first.agent.proc.child.pid!,
      gateway: gw.proc.child.pid!,
      receiver: next.agent.proc.child.pid!,
    };
    const before = {
      holder: cpuMs(pids.holder),
      gateway: cpuMs(pids.gateway),
      receiver: cpuMs(pids.receiver),
    };
    const got = await pull(name);
    for (const k of ["holder", "gateway", "receiver"] as const) cpu[k].push(cpuMs(pids[k]) - before[k]);
    if (
      !got.statuses.some((s) => s.startsWith("fetching")) ||
      got.statuses.some((s) => s.startsWith("quantizing"))
    )
      throw new Error(`${name} did not copy the conversion: ${got.statuses.join("; ")}`);
    copy.push(got.ms);
    await next.agent.proc.stop();

    // Without the copy: fetch the source, then convert it.
    const dir = tempDir("b9-bench-conv-");
    const t = performance.now();
    await download(files.url(path.basename(source)), sourceSha);
    const run = spawnSync(tool, ["--allow-requantize", source, path.join(dir, "out.gguf"), type, threads], {
      encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`llama-quantize failed: ${run.stderr.slice(-500)}`);
    convert.push(performance.now() - t);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await files.stop();

  const base = median(plain);
  out(`${machineLine()}\n`);
  out(
    `SmolLM2-135M Q4_1 → ${type} (${(record.size / 1024 ** 2).toFixed(1)} MiB), ${runs} rounds alternating, a new machine each round\n\n`,
  );
  out(
    table(
      ["how the new machine gets the model", "median ms", "min ms", "ratio to a plain download"],
      [
        [
          "plain download of the converted bytes (python http.server)",
          ms(base),
          ms(Math.min(...plain)),
          "1.00×",
        ],
        [
          "copy of the first machine's conversion through the gateway (b9 model pull)",
          ms(median(copy)),
          ms(Math.min(...copy)),
          ratio(median(copy), base),
        ],
        [
          "fetch the source and convert here (llama-quantize by hand)",
          ms(median(convert)),
          ms(Math.min(...convert)),
          ratio(median(convert), base),
        ],
      ],
    ),
  );
  const mib = record.size / 1024 ** 2;
  out(
    `\nCPU per copy, median: holder's agent ${ms(median(cpu.holder))} ms, gateway ${ms(median(cpu.gateway))} ms (${(median(cpu.gateway) / mib).toFixed(2)} ms per MiB relayed), new machine's agent ${ms(median(cpu.receiver))} ms\n`,
  );
} finally {
  await stopAll();
}
