import type { NewUsageRow, Store } from "@beta9/store";
import { DIALECTS, openTestStore } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const now = 1_790_000_000_000;

for (const dialect of DIALECTS) {
  describe(`usage footprints on ${dialect.name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await openTestStore(dialect);
      await store.pools.insert({ name: "external", description: "", created_at: now });
      await store.workspaces.insert({ id: "ws_1", name: "default", created_at: now });
    });
    afterEach(async () => {
      await store.close();
    });

    it("keeps unmeasured energy as null (not zero) and sums footprints per group and confidence", async () => {
      await store.usage.insertMany([
        row("u1", { model: "a", ...measured(2, 0.2, "low", "medium") }),
        row("u2", { model: "a", ...measured(1, 0.5, "high", "high") }),
        row("u3", { model: "b", ...measured(3, 0.3, "medium", "medium") }),
        // Energy without a grid figure (no country): Wh counted, no gCO2e.
        row("u4", { model: "b", energy_wh: 1, energy_method: "util_tdp", energy_confidence: "low" }),
        row("u5", { model: "c" }),
        row("u6", { model: "a", workspace_id: "ws_2", ...measured(9, 9, "high", "high") }),
      ]);
      const q = { workspaceId: "ws_1", since: now - 1, until: now + 1 };
      const byModel = await store.usage.summarize({ ...q, groupBy: "model" });
      expect(byModel.map((g) => [g.group, g.energy_wh, g.co2e_g])).toEqual([
        ["a", 3, 0.7],
        ["b", 4, 0.3],
        ["c", null, null],
      ]);
      const report = await store.usage.footprints({ ...q, groupBy: "model" });
      expect(report.find((g) => g.group === "a")).toEqual({
        group: "a",
        count: 2,
        measured: 2,
        tokens: 30,
        measured_tokens: 30,
        energy_wh: 3,
        co2e_g: 0.7,
        co2e_by_confidence: { high: 0.5, medium: 0, low: 0.2 },
      });
      expect(report.find((g) => g.group === "b")).toMatchObject({ measured: 2, measured_tokens: 15 });
      expect(report.find((g) => g.group === "c")).toMatchObject({ measured: 0, energy_wh: 0, co2e_g: 0 });
      // The operator's view: every workspace, grouped by workspace.
      const all = await store.usage.footprints({ ...q, workspaceId: undefined, groupBy: "workspace" });
      expect(all.map((g) => [g.group, g.count])).toEqual([
        ["ws_1", 5],
        ["ws_2", 1],
      ]);
    });

    it("sums the footprints of jobs' runs", async () => {
      const base = {
        workspace_id: "ws_1",
        machine_id: "m1",
        started_at: now - 10,
        ended_at: now,
        cpu_seconds: 1,
        gpu_seconds: 0,
      };
      await store.jobRuns.recordUsage({
        ...base,
        job_id: "j1",
        attempt: 1,
        ...measured(5, 1, "low", "medium"),
      });
      await store.jobRuns.recordUsage({ ...base, job_id: "j2", attempt: 1 });
      const [jobs] = await store.usage.jobFootprints({
        workspaceId: "ws_1",
        since: now - 1,
        until: now + 1,
        groupBy: "model",
      });
      expect(jobs).toMatchObject({ group: "jobs", count: 2, measured: 1, energy_wh: 5, co2e_g: 1 });
    });
  });
}

function measured(wh: number, co2e: number, energy: string, intensity: string) {
  return {
    energy_wh: wh,
    energy_method: "util_tdp",
    energy_confidence: energy,
    pue: 1,
    grid_zone: "FR",
    grid_intensity: 56,
    intensity_source: "ember:2023",
    intensity_year: 2023,
    intensity_confidence: intensity,
    co2e_g: co2e,
    carbon_basis: "location",
  };
}

function row(id: string, over: Partial<NewUsageRow> = {}): NewUsageRow {
  return {
    id,
    key_id: "k1",
    workspace_id: "ws_1",
    model: "a",
    machine_id: "m1",
    status: 200,
    prompt_tokens: 10,
    completion_tokens: 5,
    latency_ms: 100,
    ttfb_ms: 20,
    started_at: now,
    ...over,
  };
}
