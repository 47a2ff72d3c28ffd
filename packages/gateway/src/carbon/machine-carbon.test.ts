import type { MachineView } from "@beta9/protocol";
import type { NewUsageRow, Store } from "@beta9/store";
import { DIALECTS, openTestStore } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { machineView } from "../placement/testing/machine-view.ts";
import { GridIntensity } from "./intensity.ts";
import { MachineCarbonFacts } from "./machine-carbon.ts";

const silent = { warn: () => {} };

describe("what low-carbon placement knows of a machine", () => {
  let store: Store;
  beforeEach(async () => {
    store = await openTestStore(DIALECTS[0]);
    await store.pools.insert({ name: "external", description: "", created_at: Date.now() });
    await store.workspaces.insert({ id: "ws_1", name: "default", created_at: Date.now() });
  });
  afterEach(async () => {
    await store.close();
  });

  const answer = (id: string, machine: string, tokens: number, wh: number | null): NewUsageRow => ({
    id,
    key_id: "k1",
    workspace_id: "ws_1",
    model: "a",
    machine_id: machine,
    status: 200,
    prompt_tokens: tokens,
    completion_tokens: 0,
    latency_ms: 10,
    ttfb_ms: 5,
    started_at: Date.now() - 1_000,
    ...(wh === null
      ? {}
      : {
          energy_wh: wh,
          energy_method: "util_tdp",
          energy_confidence: "low",
          pue: 1,
          grid_zone: "FR",
          grid_intensity: 56,
          intensity_source: "ember:2023",
          intensity_year: 2023,
          intensity_confidence: "medium",
          co2e_g: (wh * 56) / 1000,
          carbon_basis: "location",
        }),
  });

  it("measures Wh per 1,000 tokens from a machine's answers, reads its grid and PUE, and knows nothing without a country", async () => {
    await store.usage.insertMany([
      answer("u1", "m-fr", 300, 0.3),
      answer("u2", "m-fr", 200, 0.7),
      // Unmeasured answers do not dilute the figure.
      answer("u3", "m-fr", 5_000, null),
      // Too few tokens to say anything of m-few.
      answer("u4", "m-few", 20, 5),
    ]);
    const facts = new MachineCarbonFacts(store, new GridIntensity(), silent);
    await facts.refresh(["FR"]);
    const fr = machineView({ id: "m-fr", country: "FR", pue: 1.4 } as Partial<MachineView> & { id: string });
    expect(facts.carbonOf(fr)).toEqual({
      gridGPerKwh: 56,
      gridSource: expect.stringMatching(/^ember:\d{4}$/),
      pue: 1.4,
      whPer1kTokens: 2,
    });
    expect(facts.carbonOf(machineView({ id: "m-few", country: "FR" }))?.whPer1kTokens).toBeNull();
    expect(facts.carbonOf(machineView({ id: "m-x" }))).toBeNull();
  });
});
