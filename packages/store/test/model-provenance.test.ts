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
  });
}
