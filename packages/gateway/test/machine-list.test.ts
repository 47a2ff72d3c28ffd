import { DIALECTS } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Harness, harness, joinBody } from "./harness.ts";

// Enough machines for a page that the gateway serialises over several turns of its event loop.
const MACHINES = 120;

for (const dialect of DIALECTS) {
  describe(`GET /api/v1/machines over several slices on ${dialect.name}`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await harness(dialect);
    });
    afterEach(async () => {
      await h.gw.close();
    });

    it("lists every machine once, in join order, each as GET /api/v1/machines/:id shows it", async () => {
      const t = (await h.call("POST", "/api/v1/tokens", { body: { uses: MACHINES } })).body.token;
      const ids = Array.from({ length: MACHINES }, (_, i) => `list-${String(i).padStart(3, "0")}`);
      for (const id of ids) {
        const join = await h.call("POST", "/api/v1/machines/join", { body: joinBody(t, id), key: null });
        expect(join.status).toBe(201);
      }
      const res = await h.gw.app.inject({
        method: "GET",
        url: "/api/v1/machines?limit=5000",
        headers: { authorization: `Bearer ${h.admin}` },
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toMatch(/^application\/json/);
      const list = JSON.parse(res.payload) as { machines: { id: string }[]; next: string | null };
      expect(list.next).toBeNull();
      expect(list.machines.map((m) => m.id)).toEqual(ids);
      for (const m of list.machines)
        expect(m).toEqual((await h.call("GET", `/api/v1/machines/${m.id}`)).body);

      // A page that ends inside the list, and the one after it.
      const first = await h.call("GET", "/api/v1/machines?limit=70");
      expect(first.body.machines.map((m: { id: string }) => m.id)).toEqual(ids.slice(0, 70));
      expect(first.body.next).toBe(ids[69]);
      const rest = await h.call("GET", `/api/v1/machines?limit=70&after=${first.body.next}`);
      expect(rest.body).toMatchObject({ next: null });
      expect(rest.body.machines.map((m: { id: string }) => m.id)).toEqual(ids.slice(70));
    });

    it("keeps join order for machines learnt late (from another replica): every replica pages alike", async () => {
      const t = (await h.call("POST", "/api/v1/tokens", { body: { uses: 3 } })).body.token;
      for (const id of ["m-b", "m-d", "m-f"])
        expect(
          (await h.call("POST", "/api/v1/machines/join", { body: joinBody(t, id), key: null })).status,
        ).toBe(201);
      const row = (id: string) => h.gw.registry.get(id)!;
      // Rows as a peer's machines reach this replica: after the ones it holds, though they joined earlier.
      h.gw.registry.put({ ...row("m-d"), id: "m-a", joined_at: row("m-b").joined_at - 1 });
      // …one at a time, or thousands at once when the replicas start together (in any order).
      h.gw.registry.putMany([
        { ...row("m-f"), id: "m-g", joined_at: row("m-f").joined_at + 1 },
        { ...row("m-d"), id: "m-e" },
        { ...row("m-b"), id: "m-c" },
      ]);
      const listed = async (q = "") =>
        (await h.call("GET", `/api/v1/machines${q}`)).body as {
          machines: { id: string }[];
          next: string | null;
        };
      expect((await listed()).machines.map((m) => m.id)).toEqual([
        "m-a",
        "m-b",
        "m-c",
        "m-d",
        "m-e",
        "m-f",
        "m-g",
      ]);
      // A page boundary before a late arrival: the next page still starts after it.
      const first = await listed("?limit=3");
      expect(first.next).toBe("m-c");
      h.gw.registry.remove("m-g");
      expect((await listed(`?limit=3&after=${first.next}`)).machines.map((m) => m.id)).toEqual([
        "m-d",
        "m-e",
        "m-f",
      ]);
    });
  });
}
