import type { Hardware } from "@beta9/protocol";
import { describe, expect, it } from "vitest";
import type { Engine, EngineDetection, ServedModel, StartOptions } from "./engine.ts";
import { EngineRegistry, externalEngines } from "./registry.ts";
import { laptopCpuOnly } from "./testing/machines.ts";
import { stubPath } from "./testing/stub-path.ts";

/** Stands in for the builtin engine, which the integrator passes in. */
class FakeBuiltin implements Engine {
  readonly name = "builtin" as const;
  shutdowns = 0;
  async detect(_hardware: Hardware): Promise<EngineDetection> {
    return {
      engine: "builtin",
      installed: true,
      version: "3.21.1",
      accelerators: ["cpu"],
      formats: ["gguf"],
    };
  }
  start(_options: StartOptions): Promise<ServedModel> {
    throw new Error("not in this test");
  }
  async shutdown(): Promise<void> {
    this.shutdowns++;
  }
}

describe("engine registry", () => {
  it("holds the builtin engine and the five external ones by name", async () => {
    const builtin = new FakeBuiltin();
    const registry = new EngineRegistry(builtin);
    expect(registry.list().map((e) => e.name)).toEqual([
      "builtin",
      "ollama",
      "llamacpp",
      "vllm",
      "sglang",
      "mlx",
    ]);
    expect(registry.get("builtin")).toBe(builtin);
    expect(registry.get("vllm")?.name).toBe("vllm");
  });

  it("detectAll on a machine with nothing installed: builtin usable, every other engine says what is missing", async () => {
    const empty = await stubPath();
    const registry = new EngineRegistry(
      new FakeBuiltin(),
      externalEngines({ common: { pathEnv: empty }, ollama: { reuseUrl: null } }),
    );
    const detections = await registry.detectAll(laptopCpuOnly);
    expect(detections.map((d) => [d.engine, d.installed])).toEqual([
      ["builtin", true],
      ["ollama", false],
      ["llamacpp", false],
      ["vllm", false],
      ["sglang", false],
      ["mlx", false],
    ]);
    for (const d of detections.slice(1)) expect(d.reason).toMatch(/\w+ \w+/);
  });

  it("an engine whose detection throws is reported as not installed, and the others still are detected", async () => {
    const broken: Engine = {
      name: "llamacpp",
      detect: () => Promise.reject(new Error("permission denied")),
      start: () => Promise.reject(new Error("no")),
      shutdown: () => Promise.resolve(),
    };
    const registry = new EngineRegistry(new FakeBuiltin(), [broken]);
    expect(await registry.detectAll(laptopCpuOnly)).toEqual([
      { engine: "builtin", installed: true, version: "3.21.1", accelerators: ["cpu"], formats: ["gguf"] },
      {
        engine: "llamacpp",
        installed: false,
        accelerators: [],
        formats: [],
        reason: "detecting llamacpp failed: permission denied",
      },
    ]);
  });

  it("shutdownAll stops every engine even when one fails", async () => {
    const builtin = new FakeBuiltin();
    const failing: Engine = {
      name: "vllm",
      detect: () => Promise.reject(new Error("x")),
      start: () => Promise.reject(new Error("x")),
      shutdown: () => Promise.reject(new Error("stuck")),
    };
    await new EngineRegistry(builtin, [failing]).shutdownAll();
    expect(builtin.shutdowns).toBe(1);
  });
});
