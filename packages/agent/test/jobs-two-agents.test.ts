import { type GatewayProc, type ModelAgent, startGateway, startModelAgent, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assignment, finalState, processesWith, submit } from "./jobs-helpers.ts";

/*
 * Two agents on one host (two users' agents, or two test files at once): each keeps to its own jobs.
 * An agent starting kills what a previous run of itself left in its job cgroups, never the jobs of
 * another agent running beside it.
 */
let gw: GatewayProc;
let first: ModelAgent;
let second: ModelAgent | undefined;

beforeAll(async () => {
  gw = await startGateway();
  first = await startModelAgent(gw, { name: "first", env: { B9AGENT_JOB_RUNNER: "native" } });
}, 60_000);

afterAll(async () => {
  await second?.agent.proc.stop();
  await first?.agent.proc.stop();
  await gw?.proc.stop();
});

describe("two agents on one host", () => {
  it("a second agent starting leaves the first one's running job alone", async () => {
    // A memory limit, so the job runs in a cgroup of its own wherever the agent can make one.
    const run = await submit(
      first,
      assignment("job-two-agents", {
        command: ["sleep", "30.4242"],
        resources: { memory_bytes: 256 * 1024 ** 2 },
      }),
    );
    expect(run.status).toBe(200);
    await waitFor(() => run.events.some((e) => e.type === "state" && e.state === "RUNNING"), {
      what: "the first agent's job to run",
    });
    await waitFor(() => processesWith("30.4242").length === 1, { what: "the job's process" });
    // Connected, the second agent has swept whatever it sweeps at start (it does so before it dials).
    second = await startModelAgent(gw, { name: "second", env: { B9AGENT_JOB_RUNNER: "native" } });
    expect(processesWith("30.4242")).toHaveLength(1);
    expect(run.events.filter((e) => e.type === "state").map((e) => (e as { state: string }).state)).toEqual([
      "PREPARING",
      "RUNNING",
    ]);
    const cancelled = await first.control("POST", "/jobs/job-two-agents/cancel");
    expect(cancelled.status).toBe(200);
    expect(finalState(await run.done).state).toBe("CANCELLED");
  }, 60_000);
});
