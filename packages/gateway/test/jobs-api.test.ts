import { type GatewayProc, inferenceKey, startGateway } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// biome-ignore lint/suspicious/noExplicitAny: tests read many JSON shapes; each assertion checks the one it needs.
type Json = any;

/*
 * The job API on the real gateway: what a workspace may submit, see and cancel. (Assignment to
 * machines and running come with the agent's job runner; here jobs stay QUEUED until cancelled.)
 */
let gw: GatewayProc;
let jobsKey: string;

const submit = (body: unknown, key = jobsKey) => gw.api<Json>("POST", "/api/v1/jobs", body, key);

beforeAll(async () => {
  gw = await startGateway();
  jobsKey = (await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "ci", scopes: ["jobs"] })).body
    .key;
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
});
