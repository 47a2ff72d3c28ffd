import { createHash } from "node:crypto";
import { getEventListeners } from "node:events";
import { type AgentProc, type GatewayProc, initAgent, startAgent, startGateway } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Beta9Client, ConflictError, type JobLogLine, jobEnded, NotFoundError } from "../src/index.ts";

/* b9.jobs against a real gateway and a real agent (its native runner). */
let gw: GatewayProc;
let agent: AgentProc;
let b9: Beta9Client;

beforeAll(async () => {
  gw = await startGateway();
  const key = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "sdk", scopes: ["jobs"] })).body
    .key;
  b9 = new Beta9Client({ baseUrl: gw.url, apiKey: key });
  agent = await startAgent(await initAgent(gw, { name: "worker" }), {
    env: { B9AGENT_JOB_RUNNER: "native" },
  });
}, 60_000);
afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("b9.jobs", () => {
  it("uploads an input, runs a job on it, follows its logs to the end and downloads its output", async () => {
    const data = new TextEncoder().encode("hello from an input\n");
    const uploaded = await b9.jobs.uploadInput(data);
    expect(uploaded).toEqual({ sha256: createHash("sha256").update(data).digest("hex"), size: data.length });

    const job = await b9.jobs.create({
      command: ["sh", "-c", 'cat in.txt; echo warn >&2; tr a-z A-Z < in.txt > "$B9_OUTPUT_DIR/upper.txt"'],
      inputs: [{ name: "in.txt", sha256: uploaded.sha256 }],
    });
    expect(job.state).toBe("QUEUED");

    const lines: JobLogLine[] = [];
    for await (const line of b9.jobs.logs(job.id, { follow: true })) lines.push(line);
    expect(lines.map((l) => [l.stream, l.line])).toEqual(
      expect.arrayContaining([
        ["stdout", "hello from an input"],
        ["stderr", "warn"],
      ]),
    );

    const ended = await b9.jobs.wait(job.id, { intervalMs: 100 });
    expect(ended).toMatchObject({ state: "SUCCEEDED", exit_code: 0 });
    expect(jobEnded(ended)).toBe(true);
    const after = [];
    for await (const line of b9.jobs.logs(job.id, { after: 1 })) after.push(line.seq);
    expect(after).toEqual(lines.slice(1).map((l) => l.seq));

    const { outputs } = await b9.jobs.outputs(job.id);
    const upper = new TextEncoder().encode("HELLO FROM AN INPUT\n");
    expect(outputs).toEqual([
      { name: "upper.txt", size: upper.length, sha256: createHash("sha256").update(upper).digest("hex") },
    ]);
    expect(Buffer.from(await b9.jobs.output(job.id, "upper.txt")).toString()).toBe("HELLO FROM AN INPUT\n");
    await expect(b9.jobs.output(job.id, "nope.txt")).rejects.toThrow(NotFoundError);
  }, 60_000);

  it("lists by state, cancels, and refuses to cancel twice", async () => {
    const job = await b9.jobs.create({ command: ["sleep", "60"], priority: 7 });
    const { jobs } = await b9.jobs.list({ state: ["QUEUED", "ASSIGNED", "PREPARING", "RUNNING"] });
    expect(jobs.map((j) => j.id)).toContain(job.id);
    const cancelled = await b9.jobs.cancel(job.id);
    expect(cancelled.state).toBe("CANCELLED");
    expect(cancelled.events?.at(-1)?.state).toBe("CANCELLED");
    await expect(b9.jobs.cancel(job.id)).rejects.toThrow(ConflictError);
    const page = await b9.jobs.list({ state: "CANCELLED", limit: 1 });
    expect(page.jobs.map((j) => j.id)).toEqual([job.id]);
  }, 60_000);

  it("waits for a job with a signal without piling listeners on it", async () => {
    const job = await b9.jobs.create({ command: ["sleep", "1"] });
    const caller = new AbortController();
    const ended = await b9.jobs.wait(job.id, { intervalMs: 5, signal: caller.signal });
    expect(ended.state).toBe("SUCCEEDED");
    // A long wait polls many times: none of its pauses may leave a listener behind.
    expect(getEventListeners(caller.signal, "abort")).toHaveLength(0);
  }, 60_000);
});
