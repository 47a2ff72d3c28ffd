import { createHash } from "node:crypto";
import { MAX_JOB_INPUT_BYTES } from "@beta9/protocol";
import { type GatewayProc, inferenceKey, initAgent, startGateway, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * The job API on the real gateway: what a workspace may submit, see and cancel. The pool has one
 * machine, in Germany, that joined and never connected: jobs that fit it are queued and wait (running
 * them is jobs-run.test.ts), jobs that could never fit it are refused.
 */
let gw: GatewayProc;
let jobsKey: string;

const submit = (body: unknown, key = jobsKey) => gw.api<Json>("POST", "/api/v1/jobs", body, key);

beforeAll(async () => {
  gw = await startGateway();
  jobsKey = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body
    .key;
  await initAgent(gw, { name: "idle", country: "DE" });
}, 30_000);

afterAll(async () => {
  await gw?.proc.stop();
});

describe("the job API", () => {
  it("queues a command with its spec, shows it with its transitions, and cancels it", async () => {
    const made = await submit({
      command: ["python3", "-c", "print(1)"],
      priority: 5,
      retries: 2,
      region: "eu",
    });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({
      id: expect.stringMatching(/^job_[a-f0-9]{16}$/),
      workspace: "default",
      state: "QUEUED",
      priority: 5,
      attempt: 1,
      max_retries: 2,
      spec: { command: ["python3", "-c", "print(1)"], region: "eu" },
    });
    const shown = await gw.api<Json>("GET", `/api/v1/jobs/${made.body.id}`, undefined, jobsKey);
    expect(shown.body.events).toEqual([expect.objectContaining({ state: "QUEUED", machine_id: null })]);
    const cancelled = await gw.api<Json>("POST", `/api/v1/jobs/${made.body.id}/cancel`, undefined, jobsKey);
    expect(cancelled.body).toMatchObject({
      state: "CANCELLED",
      reason: expect.stringMatching(/cancelled by key/),
    });
    expect(cancelled.body.events.map((e: { state: string }) => e.state)).toEqual(["QUEUED", "CANCELLED"]);
    const again = await gw.api<Json>("POST", `/api/v1/jobs/${made.body.id}/cancel`, undefined, jobsKey);
    expect(again).toMatchObject({
      status: 409,
      body: { error: { message: expect.stringMatching(/already ended \(CANCELLED\)/) } },
    });
  });

  it("makes one job for one idempotency key, even when both submissions race", async () => {
    const body = { command: ["true"], idempotency_key: "nightly" };
    const [a, b] = await Promise.all([submit(body), submit(body)]);
    expect([a.status, b.status].sort()).toEqual([200, 201]);
    expect(a.body.id).toBe(b.body.id);
  });

  it("refuses a bad spec with the field named, and keeps nothing of it", async () => {
    const before = (await gw.api<Json>("GET", "/api/v1/jobs?limit=500", undefined, jobsKey)).body.jobs.length;
    for (const bad of [
      { command: [] },
      { command: "python3 train.py" }, // a shell line, not an argument array
      { command: ["x"], timeout_seconds: -5 },
      { command: ["x"], resources: { gpu: "quantum" } },
      { command: ["x"], env: { "BAD-NAME": "1" } },
    ]) {
      const res = await submit(bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.body.error.code).toBe("bad_request");
    }
    expect((await gw.api<Json>("GET", "/api/v1/jobs?limit=500", undefined, jobsKey)).body.jobs.length).toBe(
      before,
    );
  });

  it("keeps workspaces apart and asks for the jobs scope to submit", async () => {
    const mine = (await submit({ command: ["true"] })).body.id as string;
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "lab" })).status).toBe(201);
    const labKey = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "lab",
        scopes: ["jobs"],
        workspace: "lab",
      })
    ).body.key;
    expect((await gw.api<Json>("GET", `/api/v1/jobs/${mine}`, undefined, labKey)).status).toBe(404);
    expect((await gw.api<Json>("POST", `/api/v1/jobs/${mine}/cancel`, undefined, labKey)).status).toBe(404);
    expect((await gw.api<Json>("GET", "/api/v1/jobs", undefined, labKey)).body.jobs).toEqual([]);
    const modelsOnly = await inferenceKey(gw);
    const refused = await submit({ command: ["true"] }, modelsOnly);
    expect(refused).toMatchObject({ status: 403, body: { error: { code: "scope_missing" } } });
  });

  it("lists newest first, a page at a time, filtered by state", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit({ command: ["true"], priority: i })).body.id);
    await gw.api("POST", `/api/v1/jobs/${ids[0]}/cancel`, undefined, jobsKey);
    const first = (await gw.api<Json>("GET", "/api/v1/jobs?limit=2&state=QUEUED", undefined, jobsKey)).body;
    expect(first.jobs.map((j: { id: string }) => j.id)).toEqual([ids[4], ids[3]]);
    const second = (
      await gw.api<Json>("GET", `/api/v1/jobs?limit=2&state=QUEUED&after=${first.next}`, undefined, jobsKey)
    ).body;
    expect(second.jobs.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    const bad = await gw.api<Json>("GET", "/api/v1/jobs?state=DONE", undefined, jobsKey);
    expect(bad).toMatchObject({
      status: 400,
      body: { error: { message: expect.stringMatching(/choose from QUEUED/) } },
    });
  });

  it("refuses at submission a job no machine could ever run, naming why, and keeps nothing of it", async () => {
    const before = (await gw.api<Json>("GET", "/api/v1/jobs?limit=500", undefined, jobsKey)).body.jobs.length;
    for (const [spec, why] of [
      [{ command: ["x"], resources: { gpu: "nvidia" } }, /nvidia GPU/],
      [{ command: ["x"], resources: { memory_bytes: 1e15 } }, /1000000\.0 GB free memory/],
      [{ command: ["x"], countries: ["FR"] }, /in FR/],
      [{ command: ["x"], pool: "elsewhere" }, /pool elsewhere/],
    ] as const) {
      const res = await submit(spec);
      expect(res.status, JSON.stringify(spec)).toBe(400);
      expect(res.body.error.message).toMatch(/no machine could ever run this job/);
      expect(res.body.error.message).toMatch(why);
    }
    expect((await gw.api<Json>("GET", "/api/v1/jobs?limit=500", undefined, jobsKey)).body.jobs.length).toBe(
      before,
    );
  });

  it("queues a job that fits no machine now, with the reason it waits", async () => {
    const made = await submit({ command: ["true"], countries: ["DE"] });
    expect(made.status).toBe(201);
    let waiting: Json;
    await waitFor(
      async () => {
        waiting = (await gw.api<Json>("GET", `/api/v1/jobs/${made.body.id}`, undefined, jobsKey)).body;
        return waiting.reason !== null;
      },
      { timeoutMs: 10_000, what: "the job's wait reason" },
    );
    expect(waiting).toMatchObject({
      state: "QUEUED",
      reason: expect.stringMatching(/no machine has joined yet|no machine is READY/),
    });
    // The wait's reason is no transition: the job's history is still its one QUEUED.
    expect(waiting.events.map((e: { state: string }) => e.state)).toEqual(["QUEUED"]);
    await gw.api("POST", `/api/v1/jobs/${made.body.id}/cancel`, undefined, jobsKey);
  });

  it("takes inputs as bytes by sha256, per workspace, and refuses a job naming one its workspace lacks", async () => {
    const bytes = Buffer.from("a,b\n1,2\n");
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const up = await fetch(`${gw.url}/api/v1/jobs/inputs`, {
      method: "POST",
      headers: { authorization: `Bearer ${jobsKey}`, "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(up.status).toBe(201);
    expect(await up.json()).toEqual({ sha256, size: bytes.length });
    const ok = await submit({ command: ["cat", "data.csv"], inputs: [{ name: "data.csv", sha256 }] });
    expect(ok.status).toBe(201);
    await gw.api("POST", `/api/v1/jobs/${ok.body.id}/cancel`, undefined, jobsKey);

    const other = "0".repeat(64);
    const missing = await submit({ command: ["x"], inputs: [{ name: "weights.bin", sha256: other }] });
    expect(missing).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
    expect(missing.body.error.message).toMatch(/input weights\.bin .* was not uploaded by this workspace/);

    // Another workspace has not uploaded these bytes: to it they do not exist.
    await gw.api("POST", "/api/v1/workspaces", { name: "inputs-other" });
    const otherKey = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "o",
        scopes: ["jobs"],
        workspace: "inputs-other",
      })
    ).body.key;
    const foreign = await submit({ command: ["x"], inputs: [{ name: "data.csv", sha256 }] }, otherKey);
    expect(foreign.status).toBe(400);

    // The key is checked before the body is read; an input over the cap is refused unread.
    const readOnly = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "r", scopes: ["read"] }))
      .body.key;
    const noScope = await fetch(`${gw.url}/api/v1/jobs/inputs`, {
      method: "POST",
      headers: { authorization: `Bearer ${readOnly}`, "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(noScope.status).toBe(403);
    const big = await fetch(`${gw.url}/api/v1/jobs/inputs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${jobsKey}`,
        "content-type": "application/octet-stream",
        "content-length": String(MAX_JOB_INPUT_BYTES + 1),
      },
      body: Buffer.alloc(MAX_JOB_INPUT_BYTES + 1),
    }).catch((err: Error) => err);
    if (!(big instanceof Error)) expect(big.status).toBe(413);
  });

  it("shows a queued job's logs and outputs as empty, and another workspace's as not found", async () => {
    const id = (await submit({ command: ["true"] })).body.id as string;
    const logs = await fetch(`${gw.url}/api/v1/jobs/${id}/logs`, {
      headers: { authorization: `Bearer ${jobsKey}` },
    });
    expect(logs.status).toBe(200);
    expect(await logs.text()).toBe("");
    expect((await gw.api<Json>("GET", `/api/v1/jobs/${id}/outputs`, undefined, jobsKey)).body).toEqual({
      outputs: [],
    });
    // Following it answers at once, before its first line, which comes only once it runs.
    const abort = new AbortController();
    const followed = await fetch(`${gw.url}/api/v1/jobs/${id}/logs?follow=true`, {
      headers: { authorization: `Bearer ${jobsKey}` },
      signal: abort.signal,
    });
    expect(followed.status).toBe(200);
    expect(followed.headers.get("content-type")).toMatch(/application\/x-ndjson/);
    abort.abort();
    await gw.api("POST", "/api/v1/workspaces", { name: "lab" });
    const labKey = (
      await gw.api<{ key: string }>("POST", "/api/v1/keys", {
        name: "lab2",
        scopes: ["jobs"],
        workspace: "lab",
      })
    ).body.key;
    expect((await gw.api<Json>("GET", `/api/v1/jobs/${id}/logs`, undefined, labKey)).status).toBe(404);
    expect((await gw.api<Json>("GET", `/api/v1/jobs/${id}/outputs`, undefined, labKey)).status).toBe(404);
    expect((await gw.api<Json>("GET", `/api/v1/jobs/${id}/outputs/a.txt`, undefined, jobsKey)).status).toBe(
      404,
    );
    await gw.api("POST", `/api/v1/jobs/${id}/cancel`, undefined, jobsKey);
  });
});
