/**
 * Queue bench: how many jobs a second a real b9gateway queues, and assigns and follows to their end,
 * with J jobs waiting and N agents. The agents are simulated in this process (they join and speak the
 * agent channel as the real agent does, and run each job at once: PREPARING, RUNNING, one log line,
 * SUCCEEDED), so what is measured is the gateway's own cost per job, not a command's.
 *
 *   npx node bench/jobs/queue.ts [--sizes 100x10,1000x100] [--concurrency 16]
 *
 * Each size: N agents join (their channels closed, so jobs wait QUEUED), J jobs are submitted, then
 * every channel opens at once and the clock runs until the last job has SUCCEEDED. The first size is
 * the baseline the others are compared with. See README.md beside this file.
 */
import type http2 from "node:http2";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { parseArgs } from "node:util";
import { HEARTBEAT_STREAM_PATH, type Heartbeat, type JobAssignment, type JobRunEvent } from "@beta9/protocol";
import { startGateway, waitFor } from "@beta9/test-utils";
import { cpuMs } from "../common/procfs.ts";
import { AgentServer, type ChannelAgent, joinAgent, openChannel, SIM_HARDWARE } from "../common/sim-agent.ts";
import { out, table } from "../common/stats.ts";

interface Size {
  jobs: number;
  agents: number;
}

function options(): { sizes: Size[]; concurrency: number } {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string", default: "100x10,1000x100" },
      concurrency: { type: "string", default: "16" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out("usage: npx node bench/jobs/queue.ts [--sizes JOBSxAGENTS,…] [--concurrency 16]\n");
    process.exit(0);
  }
  const sizes = values.sizes.split(",").map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--sizes: JOBSxAGENTS, e.g. 1000x100 (got ${s})`);
    return { jobs: Number(m[1]), agents: Number(m[2]) };
  });
  return { sizes, concurrency: Number(values.concurrency) };
}

/** An agent that beats every second and runs every job it is given at once. */
class JobAgent implements ChannelAgent {
  readonly id: string;
  credential = "";
  socket: Duplex | undefined;
  ran = 0;
  #seq = 0;
  #beats: NodeJS.Timeout | undefined;
  readonly #runs = new Map<string, JobRunEvent[]>();

  constructor(id: string) {
    this.id = id;
  }

  onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const path = String(headers[":path"]);
    const method = String(headers[":method"]);
    stream.on("error", () => {});
    if (path === HEARTBEAT_STREAM_PATH && method === "POST") this.#heartbeats(stream);
    else if (path === "/jobs" && method === "POST") this.#run(stream);
    else if (path === "/jobs" && method === "GET") json(stream, 200, { jobs: [] });
    else this.#other(stream, method, path);
  }

  #other(stream: http2.ServerHttp2Stream, method: string, path: string): void {
    const m = /^\/jobs\/([^/?]+)/.exec(path);
    if (m && method === "DELETE") {
      this.#runs.delete(m[1]!);
      stream.respond({ ":status": 204 });
      stream.end();
      return;
    }
    json(stream, 404, { error: { code: "not_found", message: `${method} ${path}` } });
  }

  #heartbeats(stream: http2.ServerHttp2Stream): void {
    stream.respond({ ":status": 200, "content-type": "application/x-ndjson" });
    stream.resume(); // acks: not measured here
    const beat = () => {
      if (stream.destroyed || !stream.writable) return;
      const hb: Heartbeat = {
        seq: this.#seq++,
        sent_at_ms: Date.now(),
        usage: {
          cpu_percent: 5,
          memory_used_bytes: 8 * 1024 ** 3,
          memory_total_bytes: SIM_HARDWARE.memory_total_bytes,
          gpus: [],
        },
        running_jobs: 0,
        inference_status: "idle",
        inference: {
          engines: [],
          models: [],
          memory_free_bytes: 100 * 1024 ** 3,
          vram_free_bytes: 24 * 1024 ** 3,
        },
      };
      stream.write(`${JSON.stringify(hb)}\n`);
    };
    beat();
    this.#beats = setInterval(beat, 1_000);
    stream.on("close", () => clearInterval(this.#beats));
  }

  #run(stream: http2.ServerHttp2Stream): void {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const a = JSON.parse(Buffer.concat(chunks).toString("utf8")) as JobAssignment;
      const at = Date.now();
      const events: JobRunEvent[] = [
        { type: "state", seq: 1, at, state: "PREPARING" },
        { type: "state", seq: 2, at, state: "RUNNING" },
        { type: "log", seq: 3, at, stream: "stdout", line: `ran ${a.job_id}` },
        { type: "state", seq: 4, at, state: "SUCCEEDED", exit_code: 0 },
      ];
      this.#runs.set(a.job_id, events);
      this.ran++;
      stream.respond({ ":status": 200, "content-type": "application/x-ndjson" });
      stream.end(events.map((e) => `${JSON.stringify(e)}\n`).join(""));
    });
  }

  close(): void {
    clearInterval(this.#beats);
    this.socket?.destroy();
  }
}

function json(stream: http2.ServerHttp2Stream, status: number, body: unknown): void {
  stream.respond({ ":status": status, "content-type": "application/json" });
  stream.end(JSON.stringify(body));
}

async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

interface Result extends Size {
  submitPerS: number;
  runPerS: number;
  gatewayCpuMsPerJob: number;
}

async function runSize(size: Size, concurrency: number): Promise<Result> {
  const gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const gwPid = gw.proc.child.pid!;
  const server = new AgentServer();
  const agents = Array.from(
    { length: size.agents },
    (_, i) => new JobAgent(`q${String(i).padStart(4, "0")}`),
  );
  try {
    const token = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { uses: size.agents })).body
      .token;
    await pool(agents, concurrency, (a) => joinAgent(gw.url, token, a));
    const key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "bench", scopes: ["jobs"] }))
      .body.key;

    const ids = Array.from({ length: size.jobs }, (_, i) => i);
    const t0 = performance.now();
    await pool(ids, concurrency, async (i) => {
      const res = await gw.api("POST", "/api/v1/jobs", { command: ["echo", String(i)] }, key);
      if (res.status !== 201)
        throw new Error(`submission answered ${res.status}: ${JSON.stringify(res.body)}`);
    });
    const submitPerS = size.jobs / ((performance.now() - t0) / 1000);

    const port = Number(new URL(gw.url).port);
    const cpu0 = cpuMs(gwPid);
    const t1 = performance.now();
    await pool(agents, concurrency, (a) => openChannel({ host: "127.0.0.1", port }, server, a));
    const succeeded = async () =>
      (await gw.api<{ jobs: unknown[] }>("GET", "/api/v1/jobs?state=SUCCEEDED&limit=1", undefined, key)).body
        .jobs.length > 0 && agents.reduce((n, a) => n + a.ran, 0) >= size.jobs;
    await waitFor(succeeded, { what: "every job to run", timeoutMs: 600_000, intervalMs: 50 });
    // The last runs' ends reach the store just after their streams end.
    await waitFor(
      async () => {
        const queued = await gw.api<{ jobs: unknown[] }>(
          "GET",
          "/api/v1/jobs?state=QUEUED,ASSIGNED,PREPARING,RUNNING&limit=1",
          undefined,
          key,
        );
        return queued.body.jobs.length === 0;
      },
      { what: "every job to end", timeoutMs: 600_000, intervalMs: 50 },
    );
    const runS = (performance.now() - t1) / 1000;
    return {
      ...size,
      submitPerS,
      runPerS: size.jobs / runS,
      gatewayCpuMsPerJob: (cpuMs(gwPid) - cpu0) / size.jobs,
    };
  } finally {
    for (const a of agents) a.close();
    await gw.proc.stop();
  }
}

async function main(): Promise<void> {
  const o = options();
  const results: Result[] = [];
  for (const size of o.sizes) {
    out(`${size.jobs} jobs, ${size.agents} agents…\n`);
    results.push(await runSize(size, o.concurrency));
  }
  const base = results[0]!;
  out(
    `\n${table(
      ["jobs", "agents", "submitted/s", "ran/s (assign → end)", "× first", "gateway CPU ms/job", "× first"],
      results.map((r) => [
        String(r.jobs),
        String(r.agents),
        r.submitPerS.toFixed(0),
        r.runPerS.toFixed(0),
        (r.runPerS / base.runPerS).toFixed(2),
        r.gatewayCpuMsPerJob.toFixed(2),
        (r.gatewayCpuMsPerJob / base.gatewayCpuMsPerJob).toFixed(2),
      ]),
    )}`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
