import { type AuditEventRow, Store } from "@beta9/store";
import { DIALECTS } from "@beta9/test-utils";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const row = (seq: number, chain = "gw_a"): AuditEventRow => ({
  chain,
  seq,
  at: 1_790_000_000_000 + seq,
  actor_type: "key",
  actor_id: "key_1",
  workspace_id: "ws_1",
  workspace: "default",
  action: "key.create",
  resource: `key:k${seq}`,
  outcome: "ok",
  request_id: null,
  details: "{}",
  prev_hash: "p",
  hash: `h${seq}`,
});

for (const dialect of DIALECTS) {
  describe(`the audit log's tables on ${dialect.name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await Store.open(dialect.config());
      for (let seq = 1; seq <= 5; seq++) await store.audit.append(row(seq));
    });
    afterEach(async () => {
      await store.close();
    });

    it("reads back a batch of events as written, every column, in a transaction too", async () => {
      const batch = [6, 7, 8].map((seq) => ({
        ...row(seq),
        request_id: seq === 7 ? "req_7" : null,
        workspace_id: seq === 8 ? null : "ws_1",
        details: JSON.stringify({ seq, model: "m" }),
      }));
      await store.audit.appendMany(batch.slice(0, 1));
      await store.transaction((tx) => tx.audit.appendMany(batch.slice(1)));
      expect(await store.audit.range("gw_a", 6, 10)).toEqual(batch);
    });

    it("refuses UPDATE and DELETE of events, checkpoints and prunes: the database itself keeps them", async () => {
      const refused = /append-only/;
      await expect(
        store.db.updateTable("audit_events").set({ outcome: "refused" }).where("seq", "=", 2).execute(),
      ).rejects.toThrow(refused);
      await expect(store.db.deleteFrom("audit_events").where("seq", "=", 3).execute()).rejects.toThrow(
        refused,
      );
      await expect(store.db.deleteFrom("audit_events").execute()).rejects.toThrow(refused);
      await store.audit.addCheckpoint({
        chain: "gw_a",
        seq: 5,
        hash: "h5",
        at: 1,
        signature: "s",
        key_id: "k",
        public_key: "p",
      });
      await expect(store.db.updateTable("audit_checkpoints").set({ hash: "x" }).execute()).rejects.toThrow(
        refused,
      );
      await expect(store.db.deleteFrom("audit_checkpoints").execute()).rejects.toThrow(refused);
      if (store.kind === "postgres")
        await expect(sql`TRUNCATE audit_events`.execute(store.db)).rejects.toThrow(refused);
      expect((await store.audit.range("gw_a", 1, 10)).map((r) => [r.seq, r.outcome])).toEqual(
        [1, 2, 3, 4, 5].map((s) => [s, "ok"]),
      );
    });

    it("retention's prune removes a chain's events up to its cut, and nothing else may be removed after", async () => {
      await store.audit.append(row(1, "gw_b"));
      expect(await store.transaction((tx) => tx.audit.prune("gw_a", 3, 99))).toBe(3);
      expect((await store.audit.range("gw_a", 1, 10)).map((r) => r.seq)).toEqual([4, 5]);
      // The recorded prune covers only gw_a up to 3: a later event, or another chain's, stays refused.
      await expect(store.db.deleteFrom("audit_events").where("seq", "=", 4).execute()).rejects.toThrow(
        /append-only/,
      );
      await expect(store.db.deleteFrom("audit_events").where("chain", "=", "gw_b").execute()).rejects.toThrow(
        /append-only/,
      );
      await expect(store.db.deleteFrom("audit_prunes").execute()).rejects.toThrow(/append-only/);
      expect(await store.audit.prunes()).toEqual([{ chain: "gw_a", through_seq: 3, at: 99 }]);
      expect(await store.audit.chains()).toEqual(["gw_a", "gw_b"]);
    });

    it("lists chain by chain in sequence order and reads on from a cursor without gaps", async () => {
      await store.audit.append(row(1, "gw_b"));
      const first = await store.audit.list({ limit: 3 });
      expect(first.map((r) => `${r.chain}/${r.seq}`)).toEqual(["gw_a/1", "gw_a/2", "gw_a/3"]);
      const rest = await store.audit.list({ limit: 10, after: { gw_a: 3 } });
      expect(rest.map((r) => `${r.chain}/${r.seq}`)).toEqual(["gw_a/4", "gw_a/5", "gw_b/1"]);
      expect(await store.audit.list({ limit: 10, resource: "key:k2" })).toHaveLength(1);
    });
  });
}
