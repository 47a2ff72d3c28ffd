import { Store } from "@beta9/store";
import { DIALECTS } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const now = 1_790_000_000_000;

for (const dialect of DIALECTS) {
  describe(`what job runs leave, on ${dialect.name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await Store.open(dialect.config());
      await store.transaction((tx) =>
        tx.jobs.create(
          {
            id: "job_1",
            workspace_id: "ws_1",
            key_id: null,
            idempotency_key: null,
            spec: JSON.stringify({ command: ["yes"] }),
            priority: 0,
            max_retries: 0,
          },
          now,
        ),
      );
    });
    afterEach(async () => {
      await store.close();
    });

    const line = (i: number) => ({ at: now + i, attempt: 1, stream: "stdout", line: `line ${i}` });

    it("keeps a job's first and last log lines, numbered, and the last agent event with them", async () => {
      const bound = { head: 3, tail: 4 };
      for (let batch = 0; batch < 5; batch++) {
        const lines = Array.from({ length: 5 }, (_, i) => line(batch * 5 + i + 1));
        await store.transaction((tx) => tx.jobRuns.appendLogs("job_1", lines, (batch + 1) * 5, bound));
      }
      const kept = await store.jobRuns.logs("job_1", 0);
      expect(kept.map((l) => l.seq)).toEqual([1, 2, 3, 22, 23, 24, 25]);
      expect(kept.map((l) => l.line)).toEqual([
        "line 1",
        "line 2",
        "line 3",
        "line 22",
        "line 23",
        "line 24",
        "line 25",
      ]);
      expect((await store.jobRuns.logs("job_1", 22)).map((l) => l.seq)).toEqual([23, 24, 25]);
      expect(await store.jobs.get("job_1")).toMatchObject({ log_lines: 25, agent_seq: 25 });
    });

    it("keeps bytes by workspace and sha256, once, and a job's outputs by name", async () => {
      const data = Buffer.from("hello");
      await store.jobRuns.putBlob("ws_1", "a".repeat(64), data, now);
      await store.jobRuns.putBlob("ws_1", "a".repeat(64), data, now);
      expect(await store.jobRuns.blobSizes("ws_1", ["a".repeat(64), "b".repeat(64)])).toEqual(
        new Map([["a".repeat(64), 5]]),
      );
      expect(await store.jobRuns.blobSizes("ws_2", ["a".repeat(64)])).toEqual(new Map());
      expect(Buffer.from((await store.jobRuns.blob("ws_1", "a".repeat(64)))!.data, "base64").toString()).toBe(
        "hello",
      );
      const out = {
        job_id: "job_1",
        name: "out/result.json",
        attempt: 1,
        sha256: "a".repeat(64),
        size: 5,
        at: now,
      };
      await store.jobRuns.putOutput(out);
      await store.jobRuns.putOutput({ ...out, attempt: 2 });
      expect(await store.jobRuns.outputs("job_1")).toEqual([{ ...out, attempt: 2 }]);
    });

    it("records the GPUs a run was given, and forgets them when the job is queued again", async () => {
      const assigned = await store.transaction((tx) =>
        tx.jobs.transition("job_1", "ASSIGNED", { machineId: "m1", gpus: [0, 2] }, now),
      );
      expect(assigned).toMatchObject({ gpus: "[0,2]", machine_id: "m1" });
      const back = await store.transaction((tx) =>
        tx.jobs.transition("job_1", "QUEUED", { reason: "declined" }, now),
      );
      expect(back).toMatchObject({ gpus: null, machine_id: null, attempt: 1 });
      expect(await store.jobs.setWaitReason("job_1", "no machine is READY", now)).toBe(true);
      expect(await store.jobs.get("job_1")).toMatchObject({ state: "QUEUED", reason: "no machine is READY" });
      expect((await store.jobs.events("job_1")).map((e) => e.state)).toEqual([
        "QUEUED",
        "ASSIGNED",
        "QUEUED",
      ]);
    });
  });
}
