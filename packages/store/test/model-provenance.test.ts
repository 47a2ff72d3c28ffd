import type { Store } from "@beta9/store";
import { DIALECTS, openTestStore } from "@beta9/test-utils";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const at = 1_790_000_000_000;
const pulled = {
  workspace_id: "ws_1",
  model: "smollm2",
  machine_id: "m_1",
  sha256: "ab".repeat(32),
  source: "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/model.gguf",
  format: "gguf",
  license: "Apache-2.0",
  license_source: "gguf",
  base_model: null,
  architecture: "llama",
  // Past 2^31: a 405B model's count must survive both dialects.
  parameter_count: 405_000_000_000,
  quantization: "Q4_1",
  context_length: 8192,
  deployment_created_at: at - 10,
};

for (const dialect of DIALECTS) {
  describe(`model provenance on ${dialect.name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await openTestStore(dialect);
    });
    afterEach(async () => {
      await store.close();
    });

    it("keeps the first pull's time, refreshes a later pull of the same bytes, and keeps other bytes as another row", async () => {
      await store.modelProvenance.note(pulled, at);
      await store.modelProvenance.note({ ...pulled, license: "MIT" }, at + 5);
      await store.modelProvenance.note({ ...pulled, sha256: "cd".repeat(32) }, at + 9);
      await store.modelProvenance.note({ ...pulled, workspace_id: "ws_2" }, at + 1);
      const rows = await store.modelProvenance.list("ws_1");
      expect(rows).toEqual([
        { ...pulled, license: "MIT", first_pulled_at: at, last_pulled_at: at + 5 },
        { ...pulled, sha256: "cd".repeat(32), first_pulled_at: at + 9, last_pulled_at: at + 9 },
      ]);
    });

    it("counts a workspace's requests per model and status within the period (the report's error and refusal rates)", async () => {
      const row = (id: string, model: string, status: number, started_at = at) => ({
        id,
        key_id: "k1",
        workspace_id: "ws_1",
        model,
        machine_id: null,
        status,
        prompt_tokens: 0,
        completion_tokens: 0,
        latency_ms: 1,
        ttfb_ms: null,
        started_at,
      });
      await store.usage.insertMany([
        row("u1", "a", 200),
        row("u2", "a", 200),
        row("u3", "a", 429),
        row("u4", "b", 502),
        row("u5", "a", 200, at + 100),
        { ...row("u6", "a", 200), workspace_id: "ws_2" },
      ]);
      expect(await store.usage.statusCounts({ workspaceId: "ws_1", since: at, until: at + 100 })).toEqual([
        { model: "a", status: 200, count: 2 },
        { model: "a", status: 429, count: 1 },
        { model: "b", status: 502, count: 1 },
      ]);
    });
  });
}
