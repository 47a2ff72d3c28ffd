import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { EngineStartError } from "./engine.ts";
import { openAiModelIds, parseJson } from "./http.ts";
import { LlamaCppEngine } from "./llamacpp.ts";
import {
  hasOllamaModel,
  OllamaEngine,
  type OllamaPullProgress,
  ollamaModelNames,
  parsePullLine,
} from "./ollama.ts";
import { freeLoopbackPort } from "./ports.ts";
import { confirmedModelName, healthOk, healthReadiness } from "./process-engine.ts";
import type { ProcessServedModel } from "./served-process.ts";
import { parseSglangModelInfo } from "./sglang.ts";
import { laptopCpuOnly } from "./testing/machines.ts";
import { runningNode, stub, stubPath } from "./testing/stub-path.ts";

/*
 * Readiness and health logic against responses recorded from real engines (testdata/engines,
 * sources in SOURCES.md), replayed by a local node:http server or by fixture stand-ins.
 */

const testdata = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../../testdata/engines/${name}`, import.meta.url)), "utf8");
const fakeLlamaServer = fileURLToPath(new URL("./testing/fake-llama-server.ts", import.meta.url));
const fakeOllama = fileURLToPath(new URL("./testing/fake-ollama.ts", import.meta.url));

type Route = (method: string, url: string) => { status: number; body: string } | undefined;

const servers: Server[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function replay(route: Route): Promise<string> {
  const server = createServer((req, res) => {
    const answer = route(req.method ?? "GET", req.url ?? "/");
    if (answer === undefined) res.writeHead(404).end();
    else res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await delay(25);
  }
}

describe("llama.cpp server against recorded responses", () => {
  it("503 'Loading model' reads as loading, 200 {status: ok} as ready, no answer as down", async () => {
    let loading = true;
    const url = await replay((_m, path) =>
      path === "/health"
        ? loading
          ? { status: 503, body: testdata("llamacpp-health-503-loading.json") }
          : { status: 200, body: testdata("llamacpp-health-200-ok.json") }
        : undefined,
    );
    const signal = AbortSignal.timeout(5_000);
    expect(await healthReadiness(url, signal)).toBe("loading");
    expect(await healthOk(url)).toBe(false);
    loading = false;
    expect(await healthReadiness(url, signal)).toBe("ready");
    expect(await healthOk(url)).toBe(true);
    expect(await healthReadiness(`http://127.0.0.1:${await freeLoopbackPort()}`, signal)).toBe("down");
  });

  it("/v1/models lists the alias the model was started under", async () => {
    const url = await replay((_m, path) =>
      path === "/v1/models" ? { status: 200, body: testdata("llamacpp-v1-models-alias.json") } : undefined,
    );
    expect(openAiModelIds(parseJson(testdata("llamacpp-v1-models-alias.json")))).toEqual(["smollm2-135m"]);
    expect(await confirmedModelName(url, "smollm2-135m")).toBe("smollm2-135m");
  });

  it("LlamaCppEngine starts llama-server from PATH, waits through loading, serves under the alias, stops it", async () => {
    const dir = await stubPath();
    await stub(dir, "llama-server", runningNode(fakeLlamaServer));
    const argvFile = join(dir, "argv.json");
    const engine = new LlamaCppEngine({
      pathEnv: `${dir}:/usr/bin:/bin`,
      // Loading outlasts the start timeout (its 503 "Loading model" answers count as progress); the
      // timeout still leaves a busy CI machine time to start the server process at all.
      env: { FAKE_ENGINE_ARGV_FILE: argvFile, FAKE_LOADING_MS: "4000" },
      startTimeoutMs: 2_000,
      probeIntervalMs: 50,
    });
    cleanups.push(() => engine.shutdown());
    const logs: string[] = [];
    const served = (await engine.start({
      model: { name: "smollm2-135m", format: "gguf", path: "/models/smollm2.gguf", contextSize: 2048 },
      hardware: laptopCpuOnly,
      onLog: (line) => logs.push(line),
    })) as ProcessServedModel;
    expect(served.state()).toBe("ready");
    expect(served.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(served.upstreamModel).toBe("smollm2-135m");
    expect(await served.health()).toBe(true);
    const port = served.endpoint.split(":").pop();
    expect(JSON.parse(await readFile(argvFile, "utf8"))).toEqual([
      "-m",
      "/models/smollm2.gguf",
      "--host",
      "127.0.0.1",
      "--port",
      port,
      "--alias",
      "smollm2-135m",
      "-t",
      "2",
      "-c",
      "2048",
    ]);
    expect(logs).toContain("srv    load_model: loading model '/models/smollm2.gguf'");
    const pid = served.supervisor.pid() ?? 0;
    await served.stop();
    expect(served.state()).toBe("stopped");
    expect(await served.health()).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it("a start without llama-server installed fails with a sentence saying so", async () => {
    const engine = new LlamaCppEngine({ pathEnv: await stubPath() });
    await expect(
      engine.start({ model: { name: "m", format: "gguf", path: "/m.gguf" }, hardware: laptopCpuOnly }),
    ).rejects.toThrow(/llama-server is not installed here/);
    await expect(
      engine.start({ model: { name: "m", format: "safetensors", path: "/m" }, hardware: laptopCpuOnly }),
    ).rejects.toBeInstanceOf(EngineStartError);
  });
});

describe("vLLM and SGLang against recorded responses", () => {
  it("vLLM's /v1/models: the served name is found; an unknown alias falls back to the listed id", async () => {
    const url = await replay((_m, path) =>
      path === "/v1/models" ? { status: 200, body: testdata("vllm-v1-models.json") } : undefined,
    );
    expect(await confirmedModelName(url, "meta-llama/Meta-Llama-3.1-8B-Instruct")).toBe(
      "meta-llama/Meta-Llama-3.1-8B-Instruct",
    );
    expect(await confirmedModelName(url, "llama-3.1-8b")).toBe("meta-llama/Meta-Llama-3.1-8B-Instruct");
  });

  it("vLLM's /health: 200 with an empty body is ready; connection refused while loading is down (documented)", async () => {
    let up = false;
    const url = await replay((_m, path) =>
      path === "/health" && up ? { status: 200, body: "" } : undefined,
    );
    const signal = AbortSignal.timeout(5_000);
    expect(await healthReadiness(url, signal)).toBe("down");
    up = true;
    expect(await healthReadiness(url, signal)).toBe("ready");
  });

  it("SGLang's /get_model_info names the weights it loaded and whether it generates", () => {
    expect(parseSglangModelInfo(parseJson(testdata("sglang-get-model-info.json")))).toEqual({
      modelPath: "qwen/qwen2.5-0.5b-instruct",
      isGeneration: true,
    });
    expect(parseSglangModelInfo({ model_path: "bge", is_generation: false })?.isGeneration).toBe(false);
    expect(parseSglangModelInfo({})).toBeNull();
  });
});

describe("Ollama against recorded responses", () => {
  it("reads model names from /api/tags and /api/ps, where 'gemma3' means 'gemma3:latest'", () => {
    const tags = ollamaModelNames(parseJson(testdata("ollama-api-tags.json")));
    expect(tags).toEqual(["embeddinggemma:latest", "gemma3n:e2b"]);
    expect(hasOllamaModel(tags, "embeddinggemma")).toBe(true);
    expect(hasOllamaModel(tags, "gemma3n")).toBe(false);
    expect(hasOllamaModel(tags, "gemma3n:e2b")).toBe(true);
    expect(ollamaModelNames(parseJson(testdata("ollama-api-ps.json")))).toEqual(["gemma3:latest"]);
  });

  it("parses /api/pull progress lines and its error line", () => {
    const lines = testdata("ollama-api-pull.ndjson").trim().split("\n").map(parsePullLine);
    expect(lines[4]).toEqual({
      status: "pulling 5bbbf644084d",
      digest: "sha256:5bbbf644084d769b01eddb15aa45cfc8a562ddf6989b8a4f5a7ae0e9694da25e",
      total: 260,
      completed: 260,
    });
    expect(lines.at(-1)).toEqual({ status: "success" });
    const failed = testdata("ollama-api-pull-unknown.ndjson").trim().split("\n").map(parsePullLine);
    expect(failed).toEqual([
      { status: "pulling manifest" },
      { error: "pull model manifest: file does not exist" },
    ]);
  });

  async function runningFakeOllama(): Promise<{ url: string; log: string }> {
    const port = await freeLoopbackPort();
    const log = join(await mkdtemp(join(tmpdir(), "b9-ollama-")), "requests.ndjson");
    await writeFile(log, "");
    const child = spawn(process.execPath, [fakeOllama], {
      env: { ...process.env, OLLAMA_HOST: `127.0.0.1:${port}`, FAKE_OLLAMA_LOG: log },
      stdio: "ignore",
    });
    cleanups.push(() => {
      child.kill("SIGKILL");
    });
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/api/version`).catch(() => null))?.ok === true);
    await writeFile(log, ""); // only the engine's requests count
    return { url, log };
  }

  async function requests(
    log: string,
  ): Promise<{ method: string; url: string; body?: Record<string, unknown> }[]> {
    return (await readFile(log, "utf8"))
      .trim()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l));
  }

  it("reuses a running Ollama: detect reports its version; start loads, stop unloads with keep_alive 0", async () => {
    const { url, log } = await runningFakeOllama();
    const engine = new OllamaEngine({ reuseUrl: url, pathEnv: await stubPath() });
    cleanups.push(() => engine.shutdown());
    const detection = await engine.detect(laptopCpuOnly);
    expect(detection).toMatchObject({
      engine: "ollama",
      installed: true,
      version: "0.12.6",
      formats: ["ollama", "gguf"],
    });
    const served = await engine.start({
      model: { name: "gemma3n", format: "ollama", ollamaName: "gemma3n:e2b" },
      hardware: laptopCpuOnly,
    });
    expect(served.endpoint).toBe(url);
    expect(served.upstreamModel).toBe("gemma3n:e2b");
    expect(served.state()).toBe("ready");
    expect(await served.health()).toBe(true);
    expect(await engine.loaded()).toEqual(["gemma3:latest"]);
    await served.stop();
    expect(served.state()).toBe("stopped");
    const generate = (await requests(log)).filter((r) => r.url === "/api/generate").map((r) => r.body);
    expect(generate).toEqual([
      { model: "gemma3n:e2b", keep_alive: -1, stream: false },
      { model: "gemma3n:e2b", keep_alive: 0 },
    ]);
    expect(await engine.serverVersion(url)).toBe("0.12.6");
  });

  it("pulls a missing model through /api/pull with progress before loading it", async () => {
    const { url, log } = await runningFakeOllama();
    const engine = new OllamaEngine({ reuseUrl: url, pathEnv: await stubPath() });
    cleanups.push(() => engine.shutdown());
    const logs: string[] = [];
    const served = await engine.start({
      model: { name: "llama3.2", format: "ollama" },
      hardware: laptopCpuOnly,
      onLog: (line) => logs.push(line),
    });
    expect(served.upstreamModel).toBe("llama3.2");
    expect(logs).toContain("ollama pull llama3.2: pulling 5bbbf644084d 100%");
    expect(logs).toContain("ollama pull llama3.2: success");
    expect((await requests(log)).map((r) => r.url)).toEqual([
      "/api/version",
      "/api/tags",
      "/api/pull",
      "/api/generate",
    ]);
    const progress: OllamaPullProgress[] = [];
    await engine.pull("qwen3:0.6b", { onProgress: (p) => progress.push(p) });
    expect(progress).toHaveLength(9);
    await expect(engine.pull("no-such-model")).rejects.toThrow(
      "Ollama could not pull no-such-model: pull model manifest: file does not exist",
    );
  });

  it("starts its own `ollama serve` on a loopback port when none runs, and stops it with the last model", async () => {
    const dir = await stubPath();
    await stub(dir, "ollama", runningNode(fakeOllama));
    const log = join(dir, "requests.ndjson");
    await writeFile(log, "");
    const engine = new OllamaEngine({
      reuseUrl: `http://127.0.0.1:${await freeLoopbackPort()}`,
      pathEnv: `${dir}:/usr/bin:/bin`,
      env: { FAKE_OLLAMA_LOG: log },
      probeIntervalMs: 50,
    });
    cleanups.push(() => engine.shutdown());
    const logs: string[] = [];
    const served = await engine.start({
      model: { name: "embeddinggemma", format: "ollama" },
      hardware: laptopCpuOnly,
      onLog: (line) => logs.push(line),
    });
    const port = served.endpoint.split(":").pop();
    expect(served.endpoint).toBe(`http://127.0.0.1:${port}`);
    expect(logs).toContain(`Listening on 127.0.0.1:${port} (version 0.12.6)`);
    await served.stop();
    await waitFor(async () => (await fetch(`${served.endpoint}/api/version`).catch(() => null)) === null);
  });

  it("imports a GGUF file into Ollama: blob upload, then /api/create under a clean name", async () => {
    const { url, log } = await runningFakeOllama();
    const dir = await mkdtemp(join(tmpdir(), "b9-gguf-"));
    const file = join(dir, "tiny.gguf");
    await writeFile(file, "GGUF not really a model");
    const engine = new OllamaEngine({ reuseUrl: url, pathEnv: await stubPath() });
    cleanups.push(() => engine.shutdown());
    const served = await engine.start({
      model: { name: "Tiny Model!", format: "gguf", path: file },
      hardware: laptopCpuOnly,
    });
    expect(served.upstreamModel).toBe("tiny-model-");
    const seen = await requests(log);
    const digest = `sha256:${createHash("sha256").update("GGUF not really a model").digest("hex")}`;
    expect(seen.map((r) => `${r.method} ${r.url.replace(/sha256:[0-9a-f]{64}/, "sha256:…")}`)).toEqual([
      "GET /api/version",
      "HEAD /api/blobs/sha256:…",
      "POST /api/blobs/sha256:…",
      "POST /api/create",
      "POST /api/generate",
    ]);
    expect(seen[3]?.body).toMatchObject({ model: "tiny-model-", stream: false });
    expect(seen[1]?.url).toBe(`/api/blobs/${digest}`);
    expect(seen[3]?.body?.files).toEqual({ "tiny.gguf": digest });
  });
});
