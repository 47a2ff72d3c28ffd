import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { JobAssignment, JobRunEvent } from "@beta9/protocol";
import type { ModelAgent } from "@beta9/test-utils";

/** An assignment as the gateway sends it: attempt 1, no GPUs, inputs given as text. */
export function assignment(
  jobId: string,
  spec: JobAssignment["spec"],
  opts: { inputs?: Record<string, string>; gpus?: number[] } = {},
): JobAssignment {
  return {
    job_id: jobId,
    attempt: 1,
    spec,
    gpus: opts.gpus ?? [],
    inputs: Object.entries(opts.inputs ?? {}).map(([name, text]) => ({
      name,
      sha256: sha256(text),
      data_base64: Buffer.from(text).toString("base64"),
    })),
  };
}

export function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A run's NDJSON stream as it arrives: `events` fills while the run goes, `done` when it ended. */
export interface Stream {
  status: number;
  events: JobRunEvent[];
  done: Promise<JobRunEvent[]>;
  /** An error body, when the agent refused. */
  error?: { code: string; message: string };
}

export async function read(res: Response): Promise<Stream> {
  if (res.status !== 200) {
    const body = (await res.json()) as { error: { code: string; message: string } };
    return { status: res.status, events: [], done: Promise.resolve([]), error: body.error };
  }
  const events: JobRunEvent[] = [];
  const done = (async () => {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      partial += decoder.decode(chunk, { stream: true });
      const lines = partial.split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line !== "") events.push(JSON.parse(line) as JobRunEvent);
    }
    return events;
  })();
  // A stream cut by a killed agent rejects `done`; a test that expects that awaits it later.
  done.catch(() => {});
  return { status: res.status, events, done };
}

export async function submit(worker: ModelAgent, a: JobAssignment): Promise<Stream> {
  return read(await worker.control("POST", "/jobs", a));
}

/** The run's last state event. */
export function finalState(events: readonly JobRunEvent[]): Extract<JobRunEvent, { type: "state" }> {
  const states = events.filter((e): e is Extract<JobRunEvent, { type: "state" }> => e.type === "state");
  const last = states.at(-1);
  if (last === undefined) throw new Error("the run sent no state");
  return last;
}

export function logLines(events: readonly JobRunEvent[]): string[] {
  return events.flatMap((e) => (e.type === "log" ? [e.line] : []));
}

/** Pids of live processes whose command line contains `marker` (the test's own unique word). */
export function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      const state = /^State:\s+(\w)/m.exec(readFileSync(`/proc/${name}/status`, "utf8"))?.[1];
      if (cmdline.includes(marker) && state !== "Z") pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}
