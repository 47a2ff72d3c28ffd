import type { MachineView } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import {
  modelDigest,
  nameVariants,
  parameterSize,
  psEntry,
  type ServedModel,
  showAnswer,
  tagEntry,
} from "./models.ts";
import { expectShape, fixture } from "./testing/fixtures.ts";

function machine(id: string, gpus: number, joinedAt: string): MachineView {
  return {
    id,
    name: `worker-${id}`,
    pool: "external",
    joined_at: joinedAt,
    hardware: {
      os: "linux",
      arch: "x64",
      cpu_model: "cpu",
      cpu_cores: 2,
      memory_total_bytes: 8e9,
      gpus: Array.from({ length: gpus }, (_, index) => ({
        index,
        vendor: "nvidia" as const,
        name: "GPU",
        memory_total_bytes: 24e9,
        unified_memory: false,
      })),
    },
  } as MachineView;
}

const smol: ServedModel = {
  name: "smollm2",
  machines: [
    {
      machine: machine("b", 0, "2026-02-01T00:00:00.000Z"),
      facts: {
        name: "smollm2",
        engine: "builtin",
        state: "ready",
        memory_bytes: 287_043_498,
        context_size: 2048,
      },
    },
    {
      machine: machine("a", 1, "2026-01-01T00:00:00.000Z"),
      facts: {
        name: "smollm2",
        engine: "builtin",
        state: "ready",
        memory_bytes: 290_000_000,
        context_size: 2048,
        // What an agent records on pull, when a heartbeat carries it.
        ...{ architecture: "llama", parameter_count: 134_515_008, quantization: "Q4_1" },
      },
    },
  ],
};

describe("model listings in Ollama's shapes", () => {
  it("/api/tags entry", () => {
    const entry = tagEntry(smol);
    expectShape(entry, fixture<{ models: Record<string, unknown>[] }>("tags.json").models[0]!, {
      deep: ["details"],
    });
    expect(entry).toMatchObject({
      name: "smollm2",
      model: "smollm2",
      size: 290_000_000,
      modified_at: "2026-01-01T00:00:00.000Z",
      details: { format: "gguf", family: "llama", parameter_size: "134.52M", quantization_level: "Q4_1" },
    });
    expect(entry.digest).toMatch(/^[a-f0-9]{64}$/);
    expect(modelDigest(smol)).toBe(entry.digest);
  });

  it("/api/ps entry, with the machines serving it", () => {
    const entry = psEntry(smol);
    expectShape(entry, fixture<{ models: Record<string, unknown>[] }>("ps.json").models[0]!, {
      deep: ["details"],
    });
    expect(entry.size_vram).toBe(290_000_000);
    expect(entry.machines.map((m) => m.name)).toEqual(["worker-b", "worker-a"]);
    expect(Date.parse(entry.expires_at)).toBeGreaterThan(Date.now());
  });

  it("/api/show answer", () => {
    const answer = showAnswer(smol);
    expectShape(answer, fixture("show.json"), { deep: ["details"] });
    expect(answer.model_info).toMatchObject({
      "general.architecture": "llama",
      "general.parameter_count": 134_515_008,
      "llama.context_length": 2048,
    });
  });

  it("formats parameter counts as Ollama does", () => {
    expect(parameterSize(8_030_261_248)).toBe("8.0B");
    expect(parameterSize(134_515_008)).toBe("134.52M");
  });

  it("reads a model name with Ollama's default tag either way", () => {
    expect(nameVariants("smollm2:latest")).toEqual(["smollm2:latest", "smollm2"]);
    expect(nameVariants("llama3")).toEqual(["llama3", "llama3:latest"]);
    expect(nameVariants("smollm2:7b")).toEqual(["smollm2:7b"]);
  });
});
