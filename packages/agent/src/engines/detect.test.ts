import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { LlamaCppEngine, parseLlamaServerVersion } from "./llamacpp.ts";
import { MlxEngine } from "./mlx.ts";
import { OllamaEngine, parseOllamaVersion } from "./ollama.ts";
import { SglangEngine } from "./sglang.ts";
import { laptopCpuOnly, macStudio, oneH100, radeonBox } from "./testing/machines.ts";
import { printing, stub, stubPath } from "./testing/stub-path.ts";
import { VllmEngine } from "./vllm.ts";

/*
 * detect() against a fake PATH: a temporary directory of stub executables that print the output
 * real tools printed (testdata/engines/versions, sources in SOURCES.md).
 */

const versions = (name: string) =>
  fileURLToPath(new URL(`../../testdata/engines/versions/${name}`, import.meta.url));

/** A python3 stub answering `python3 -c <code> <distribution>` as importlib.metadata.version would. */
function fakePython(known: Record<string, string>): string {
  const cases = Object.entries(known)
    .map(([dist, file]) => `  ${dist}) /bin/cat '${versions(file)}' ;;`)
    .join("\n");
  return `#!/bin/sh\ncase "$3" in\n${cases}\n  *) echo "PackageNotFoundError: $3" >&2; exit 1 ;;\nesac\n`;
}

describe("llama-server detection", () => {
  it("finds llama-server on PATH and reads the version it prints to stderr", async () => {
    const dir = await stubPath();
    await stub(dir, "llama-server", printing(versions("llama-server.txt"), "stderr"));
    const detection = await new LlamaCppEngine({ pathEnv: dir }).detect(oneH100);
    expect(detection).toEqual({
      engine: "llamacpp",
      installed: true,
      version: "0.4.1-dev (build 10991, commit 930e2fa59)",
      accelerators: ["cpu", "cuda"],
      formats: ["gguf"],
    });
  });

  it("a configured path outside PATH is used as is", async () => {
    const dir = await stubPath();
    const path = await stub(dir, "my-llama-server", printing(versions("llama-server.txt"), "stderr"));
    const detection = await new LlamaCppEngine({ binary: path, pathEnv: "/nonexistent" }).detect(macStudio);
    expect(detection).toMatchObject({ installed: true, accelerators: ["cpu", "metal"] });
  });

  it("not on PATH: not installed, with what to do", async () => {
    const detection = await new LlamaCppEngine({ pathEnv: await stubPath() }).detect(laptopCpuOnly);
    expect(detection.installed).toBe(false);
    expect(detection.reason).toMatch(/llama-server was not found on PATH; install llama.cpp/);
  });

  it("parses both version formats llama.cpp has printed", () => {
    expect(parseLlamaServerVersion("version: 4240 (b5e0d4f8)\nbuilt with cc for x86_64-linux-gnu")).toBe(
      "4240 (b5e0d4f8)",
    );
    expect(parseLlamaServerVersion("garbage")).toBeUndefined();
  });
});

describe("ollama detection", () => {
  it("the binary without a running server: version from `ollama --version`'s client line", async () => {
    const dir = await stubPath();
    await stub(dir, "ollama", printing(versions("ollama-no-server.txt")));
    const detection = await new OllamaEngine({ pathEnv: dir, reuseUrl: null }).detect(macStudio);
    expect(detection).toEqual({
      engine: "ollama",
      installed: true,
      version: "0.3.4",
      accelerators: ["cpu", "metal"],
      formats: ["ollama", "gguf"],
    });
    expect(parseOllamaVersion("ollama version is 0.12.6")).toBe("0.12.6");
  });

  it("neither installed nor running: not installed, with where to get it", async () => {
    const detection = await new OllamaEngine({ pathEnv: await stubPath(), reuseUrl: null }).detect(
      laptopCpuOnly,
    );
    expect(detection).toMatchObject({
      installed: false,
      reason: expect.stringContaining("https://ollama.com/download"),
    });
  });
});

describe("vLLM detection", () => {
  it("reads the version from the package metadata with the script's own Python", async () => {
    const dir = await stubPath();
    const python = await stub(dir, "python3.12", fakePython({ vllm: "vllm.txt" }));
    await stub(dir, "vllm", `#!${python}\n# the vllm console script\n`);
    const detection = await new VllmEngine({ pathEnv: dir }).detect(oneH100);
    expect(detection).toEqual({
      engine: "vllm",
      installed: true,
      version: "0.6.3.post1",
      accelerators: ["cuda"],
      formats: ["safetensors"],
    });
  });

  it("falls back to `vllm --version` for a binary that is not a Python script", async () => {
    const dir = await stubPath();
    await stub(dir, "vllm", printing(versions("vllm.txt")));
    expect(await new VllmEngine({ pathEnv: dir }).detect(radeonBox)).toMatchObject({
      installed: true,
      version: "0.6.3.post1",
      accelerators: ["rocm"],
    });
  });

  it("installed on a machine without a GPU for it: not usable, and says why", async () => {
    const dir = await stubPath();
    await stub(dir, "vllm", printing(versions("vllm.txt")));
    const detection = await new VllmEngine({ pathEnv: dir }).detect(laptopCpuOnly);
    expect(detection).toMatchObject({ installed: false, version: "0.6.3.post1", accelerators: [] });
    expect(detection.reason).toMatch(/no NVIDIA \(or AMD\) GPU/);
  });
});

describe("SGLang detection", () => {
  it("asks python3 for the sglang package's version", async () => {
    const dir = await stubPath();
    await stub(dir, "python3", fakePython({ sglang: "sglang.txt" }));
    expect(await new SglangEngine({ pathEnv: dir }).detect(oneH100)).toEqual({
      engine: "sglang",
      installed: true,
      version: "0.4.4.post4",
      accelerators: ["cuda"],
      formats: ["safetensors"],
    });
  });

  it("python3 without sglang: not installed, with the pip command", async () => {
    const dir = await stubPath();
    await stub(dir, "python3", fakePython({}));
    const detection = await new SglangEngine({ pathEnv: dir }).detect(oneH100);
    expect(detection.installed).toBe(false);
    expect(detection.reason).toContain('pip install "sglang[all]"');
  });
});

describe("MLX detection", () => {
  it("Apple Silicon with mlx_lm.server on PATH: usable on Metal", async () => {
    const dir = await stubPath();
    const python = await stub(dir, "python3", fakePython({}));
    await stub(dir, "mlx_lm.server", `#!${python}\n`);
    expect(await new MlxEngine({ pathEnv: dir }).detect(macStudio)).toMatchObject({
      engine: "mlx",
      installed: true,
      accelerators: ["metal"],
      formats: ["mlx"],
    });
  });

  it("not a Mac: not usable, whatever is installed", async () => {
    const detection = await new MlxEngine({ pathEnv: await stubPath() }).detect(oneH100);
    expect(detection).toMatchObject({ installed: false, accelerators: [] });
    expect(detection.reason).toBe("MLX runs only on Apple Silicon Macs; this machine is linux/x64");
  });
});
