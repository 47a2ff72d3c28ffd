import { type NewJob, Store, type StoreConfig } from "@beta9/store";
import { DIALECTS } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const now = 1_790_000_000_000;
let n = 0;
const job = (over: Partial<NewJob> = {}): NewJob => ({
  id: `job_${String(++n).padStart(4, "0")}`,
  workspace_id: "ws_1",
  key_id: null,
  idempotency_key: null,
  spec: JSON.stringify({ command: ["echo", "hi"] }),
  priority: 0,
  max_retries: 0,
  ...over,
});

for (const dialect of DIALECTS) {
  describe(`the job queue on ${dialect.name}`, () => {
    let store: Store;
    let config: StoreConfig;
    beforeEach(async () => {
      config = dialect.config();
      store = await Store.open(config);
    });
    afterEach(async () => {
      await store.close();
    });

    const create = (j: NewJob, at = now) => store.transaction((tx) => tx.jobs.create(j, at));
    const move = (id: string, to: Parameters<Store["jobs"]["transition"]>[1], info = {}, at = now) =>
      store.transaction((tx) => tx.jobs.transition(id, to, info, at));

    it("orders the queue by priority, then first come first served, even within one millisecond", async () => {
      const made: string[] = [];
      for (let i = 0; i < 30; i++) {
        const priority = i % 3 === 0 ? 5 : 0;
        // Same millisecond for all: the order comes from the queue time, not the random-looking id.
        const { job: j } = await create(job({ id: `job_${(1000 - i).toString(36)}`, priority }));
        made.push(`${priority}:${j.id}`);
      }
      const order = (await store.jobs.queued(100)).map((j) => `${j.priority}:${j.id}`);
      expect(order).toEqual([
        ...made.filter((m) => m.startsWith("5:")),
        ...made.filter((m) => m.startsWith("0:")),
      ]);
    });

    it("a retried job keeps its place: it does not overtake jobs of its priority queued after it first", async () => {
      const a = (await create(job({ max_retries: 1 }))).job;
      const b = (await create(job())).job;
      expect(await move(a.id, "ASSIGNED", { machineId: "m1" })).toMatchObject({
        state: "ASSIGNED",
        machine_id: "m1",
      });
      await move(a.id, "RUNNING");
      await move(a.id, "LOST", { reason: "machine m1 went away" });
      const again = await move(a.id, "QUEUED", { reason: "retry after LOST" });
      expect(again).toMatchObject({ state: "QUEUED", attempt: 2, machine_id: null, queued_at: a.queued_at });
      expect((await store.jobs.queued()).map((j) => j.id)).toEqual([a.id, b.id]);
      // No retry left: a second loss ends it.
      await move(a.id, "ASSIGNED", { machineId: "m2" });
      await move(a.id, "LOST");
      expect(await move(a.id, "QUEUED")).toBeUndefined();
      expect((await store.jobs.get(a.id))?.state).toBe("LOST");
    });

    it("refuses transitions its state does not allow, and records each one it makes, in order", async () => {
      const a = (await create(job())).job;
      expect(await move(a.id, "RUNNING")).toBeUndefined(); // not assigned yet
      expect(await move(a.id, "SUCCEEDED")).toBeUndefined();
      await move(a.id, "ASSIGNED", { machineId: "m1" }, now + 1);
      await move(a.id, "PREPARING", {}, now + 2);
      const running = await move(a.id, "RUNNING", {}, now + 3);
      expect(running?.started_at).toBe(now + 3);
      const done = await move(a.id, "SUCCEEDED", { exitCode: 0 }, now + 4);
      expect(done).toMatchObject({ finished_at: now + 4, exit_code: 0 });
      expect(await move(a.id, "CANCELLED")).toBeUndefined(); // ended
      expect((await store.jobs.events(a.id)).map((e) => [e.seq, e.state, e.at])).toEqual([
        [1, "QUEUED", now],
        [2, "ASSIGNED", now + 1],
        [3, "PREPARING", now + 2],
        [4, "RUNNING", now + 3],
        [5, "SUCCEEDED", now + 4],
      ]);
    });

    it("makes one job per idempotency key in a workspace, and keeps workspaces apart", async () => {
      const first = await create(job({ idempotency_key: "nightly-eval" }));
      const again = await create(job({ idempotency_key: "nightly-eval" }));
      expect(again).toMatchObject({ created: false, job: { id: first.job.id } });
      const other = await create(job({ workspace_id: "ws_2", idempotency_key: "nightly-eval" }));
      expect(other.created).toBe(true);
      expect(await store.jobs.get(first.job.id, "ws_2")).toBeUndefined();
      expect((await store.jobs.list("ws_1")).map((j) => j.id)).toEqual([first.job.id]);
    });

    it("two gateways claiming the same jobs at once assign each exactly once", async () => {
      // A second gateway replica: its own connections to the same PostgreSQL schema. (SQLite serves
      // one gateway: there the two claimers share its store, as two schedulers in one process would.)
      const second = dialect.name === "postgres" ? await Store.open(config) : store;
      try {
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) ids.push((await create(job())).job.id);
        const claim = (s: Store, machine: string) =>
          Promise.all(
            ids.map((id) =>
              s.transaction((tx) => tx.jobs.transition(id, "ASSIGNED", { machineId: machine }, now)),
            ),
          );
        const [x, y] = await Promise.all([claim(store, "m1"), claim(second, "m2")]);
        const won = ids.map((_, i) => Number(x[i] !== undefined) + Number(y[i] !== undefined));
        expect(won).toEqual(ids.map(() => 1));
        for (const id of ids) {
          const events = await store.jobs.events(id);
          expect(events.map((e) => e.state)).toEqual(["QUEUED", "ASSIGNED"]);
        }
      } finally {
        if (second !== store) await second.close();
      }
    });
  });
}
