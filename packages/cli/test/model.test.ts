import type { DeploymentView } from "@beta9/sdk";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ADMIN_KEY, type FakeGateway, READ_KEY, startFakeGateway } from "./fake-gateway.ts";
import { b9, NOW } from "./harness.ts";

const qwen: DeploymentView = {
  name: "library/qwen2.5:7b",
  workspace: "default",
  source: "ollama:qwen2.5:7b",
  sha256: "ab".repeat(32),
  engine: "ollama",
  min_replicas: 1,
  max_replicas: 3,
  idle_seconds: 3600,
  pool: "gpu",
  gpu: "nvidia",
  min_vram_bytes: 16 * 2 ** 30,
  countries: ["DE", "FR"],
  region: "eu",
  prefer: null,
  context_size: 8192,
  created_at: new Date(NOW - 2 * 3_600_000).toISOString(),
};

let gateway: FakeGateway;
let env: Record<string, string>;
beforeEach(async () => {
  gateway = await startFakeGateway(() => NOW, { deployments: [structuredClone(qwen)] });
  env = {
    BETA9_GATEWAY: gateway.url,
    BETA9_API_KEY: ADMIN_KEY,
    BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json",
  };
});
afterEach(() => gateway.close());

describe("b9 model deploy", () => {
  it("sends only what was given and says how to call the model", async () => {
    const r = await b9(env, "model", "deploy", "llama3.2:1b", "--source", "hf:org/repo/llama.gguf");
    expect(r).toEqual({
      code: 0,
      stderr: "",
      stdout:
        "Model llama3.2:1b deployed in workspace default: 0 to 1 replicas in pool external, unloaded after 5m idle.\n" +
        'Call it as model "llama3.2:1b" on the gateway\'s OpenAI (/v1) or Ollama (/api) API.\n',
    });
    expect(gateway.requests[0]).toMatchObject({
      method: "POST",
      url: "/api/v1/deployments",
      body: { name: "llama3.2:1b", source: "hf:org/repo/llama.gguf" },
    });
    expect(Object.keys(gateway.requests[0]?.body as object)).toEqual(["name", "source"]);
  });

  it("parses every flag into the wire's units", async () => {
    const r = await b9(
      env,
      "model",
      "deploy",
      "big",
      "--source",
      "https://models.example/big.gguf",
      "--engine",
      "llamacpp",
      "--min",
      "1",
      "--max",
      "2",
      "--idle",
      "1h30m",
      "--pool",
      "gpu",
      "--gpu",
      "NVIDIA",
      "--min-vram",
      "8GB",
      "--country",
      "de, fr,DE",
      "--region",
      "EU",
      "--prefer",
      "Low-Carbon",
      "--context",
      "4096",
      "--sha256",
      "AB".repeat(32),
      "--json",
    );
    expect(r.code).toBe(0);
    const sent = {
      name: "big",
      source: "https://models.example/big.gguf",
      sha256: "ab".repeat(32),
      engine: "llamacpp",
      min_replicas: 1,
      max_replicas: 2,
      idle_seconds: 5400,
      pool: "gpu",
      gpu: "nvidia",
      min_vram_bytes: 8_000_000_000,
      countries: ["DE", "FR"],
      region: "eu",
      prefer: "low-carbon",
      context_size: 4096,
    };
    expect(gateway.requests[0]?.body).toEqual(sent);
    expect(JSON.parse(r.stdout)).toEqual({
      ...sent,
      workspace: "default",
      created_at: new Date(NOW).toISOString(),
    });
  });

  it.each([
    ["16GiB", 16 * 2 ** 30],
    ["512MiB", 512 * 2 ** 20],
    ["24 GB", 24e9],
  ])("--min-vram %s sends %i bytes", async (text, bytes) => {
    await b9(env, "model", "deploy", "m", "--source", "s", "--min-vram", text);
    expect(gateway.requests[0]?.body).toMatchObject({ min_vram_bytes: bytes });
  });

  it("refuses bad flags before calling the gateway, naming the flag", async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ["--engine", "tgi"],
        /--engine <engine>' argument 'tgi' is invalid\. unknown engine "tgi"; choose from builtin,/,
      ],
      [["--gpu", "tpu"], /--gpu <kind>' argument 'tpu' is invalid\. unknown GPU kind "tpu"/],
      [["--min", "-1"], /--min <n>' argument '-1' is invalid\. "-1" is not a whole number from 0 to 64/],
      [["--max", "0"], /--max <n>' argument '0' is invalid/],
      [["--max", "1.5"], /--max <n>' argument '1.5' is invalid/],
      [["--idle", "5x"], /--idle <duration>' argument '5x' is invalid/],
      [["--idle", "5s"], /the idle time is at least 10s/],
      [["--idle", "8d"], /the idle time is at most 7d/],
      [["--min-vram", "8G"], /"8G": "G" could mean 8GB or 8GiB; say which/],
      [["--min-vram", "lots"], /--min-vram <size>' argument 'lots' is invalid/],
      [["--country", "Germany"], /"GERMANY" is not a two-letter ISO 3166 country code/],
      [["--country", ","], /name at least one country/],
      [["--region", "us"], /unknown region "us"; the one region is eu/],
      [
        ["--context", "100"],
        /--context <tokens>' argument '100' is invalid\. "100" is not a whole number from 256/,
      ],
      [["--sha256", "abc"], /a SHA-256 is 64 hexadecimal digits/],
    ];
    for (const [args, message] of cases) {
      const r = await b9(env, "model", "deploy", "m", "--source", "s", ...args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/^error: option '/);
      expect(r.stderr).toMatch(message);
    }
    const noSource = await b9(env, "model", "deploy", "m");
    expect(noSource.stderr).toContain("required option '--source <source>' not specified");
    const minMax = await b9(env, "model", "deploy", "m", "--source", "s", "--min", "3", "--max", "2");
    expect(minMax).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: --max 2 is below --min 3\nraise --max or lower --min\n",
    });
    expect(gateway.requests).toHaveLength(0);
  });

  it("a taken name, an unknown pool and a read-only key each get the gateway's message and a next step", async () => {
    const dup = await b9(env, "model", "deploy", "library/qwen2.5:7b", "--source", "s");
    expect(dup).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "error: A deployment named library/qwen2.5:7b exists already.\n" +
        "choose another name, or remove the deployed one first with b9 model remove NAME\n",
    });
    const pool = await b9(env, "model", "deploy", "m", "--source", "s", "--pool", "nope");
    expect(pool.stderr).toBe(
      "error: There is no pool nope.\nsee the pools with b9 pool list, or make one with b9 pool create NAME\n",
    );
    const read = await b9({ ...env, BETA9_API_KEY: READ_KEY }, "model", "deploy", "m", "--source", "s");
    expect(read.code).toBe(1);
    expect(read.stderr).toMatch(
      /^error: This needs an API key with scope admin\.\nthis needs a key with the admin scope/,
    );
  });
});

describe("b9 model list", () => {
  it("prints a table: replicas as a range, idle as a duration, where as countries and region", async () => {
    await b9(env, "model", "deploy", "llama3.2:1b", "--source", "hf:org/repo/llama.gguf");
    const r = await b9(env, "model", "list");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toBe(
      [
        "NAME                 SOURCE                   ENGINE   REPLICAS   IDLE   POOL       GPU      WHERE       CREATED",
        "library/qwen2.5:7b   ollama:qwen2.5:7b        ollama   1-3        1h     gpu        nvidia   EU: DE,FR   2h ago",
        "llama3.2:1b          hf:org/repo/llama.gguf   -        0-1        5m     external   any      -           0s ago",
        "",
      ].join("\n"),
    );
  });

  it("--json prints the gateway's answer; a read key may list", async () => {
    const r = await b9({ ...env, BETA9_API_KEY: READ_KEY }, "model", "ls", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ deployments: [qwen] });
  });

  it("says so on stderr when there are none, leaving stdout empty", async () => {
    await b9(env, "model", "remove", qwen.name);
    const r = await b9(env, "model", "list");
    expect(r).toEqual({
      code: 0,
      stdout: "",
      stderr: "No models deployed. Deploy one with b9 model deploy NAME --source SOURCE.\n",
    });
  });
});

describe("b9 model show", () => {
  it("prints one model's details, with the name URL-encoded on the wire", async () => {
    const r = await b9(env, "model", "show", "library/qwen2.5:7b");
    expect(r.code).toBe(0);
    expect(gateway.requests[0]?.url).toBe("/api/v1/deployments/library%2Fqwen2.5%3A7b");
    expect(r.stdout).toBe(
      [
        "Name:          library/qwen2.5:7b",
        "Workspace:     default",
        "Source:        ollama:qwen2.5:7b",
        `SHA-256:       ${"ab".repeat(32)}`,
        "Engine:        ollama",
        "Replicas:      1 to 3 replicas",
        "Idle unload:   after 1h (3600s)",
        "Pool:          gpu",
        "GPU:           nvidia",
        "Min VRAM:      16 GiB",
        "Countries:     DE, FR",
        "Region:        EU",
        "Placement:     least loaded",
        "Context:       8192 tokens",
        `Created:       ${qwen.created_at} (2h ago)`,
        "",
      ].join("\n"),
    );
  });

  it("says what the defaults mean for a bare deployment", async () => {
    await b9(env, "model", "deploy", "tiny", "--source", "s");
    const r = await b9(env, "model", "show", "tiny");
    expect(r.stdout).toContain("SHA-256:       not pinned\n");
    expect(r.stdout).toContain("Engine:        the machine's choice\n");
    expect(r.stdout).toContain("Replicas:      0 to 1 replicas (scales to zero)\n");
    expect(r.stdout).toContain("Min VRAM:      -\n");
    expect(r.stdout).toContain("Countries:     any\n");
    expect(r.stdout).toContain("Context:       the engine's default\n");
  });

  it("--json prints the deployment; an unknown name says how to list them", async () => {
    expect(JSON.parse((await b9(env, "model", "show", qwen.name, "--json")).stdout)).toEqual(qwen);
    const r = await b9(env, "model", "show", "nope");
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "error: There is no deployment nope.\nsee them all with b9 model list\n",
    });
  });
});

describe("b9 model remove", () => {
  it("removes by name and prints a line, or JSON for scripts", async () => {
    const r = await b9(env, "model", "remove", qwen.name);
    expect(r).toEqual({ code: 0, stdout: "Model library/qwen2.5:7b removed.\n", stderr: "" });
    expect(gateway.requests[0]).toMatchObject({
      method: "DELETE",
      url: "/api/v1/deployments/library%2Fqwen2.5%3A7b",
    });
    await b9(env, "model", "deploy", "x", "--source", "s");
    const json = await b9(env, "model", "rm", "x", "--json");
    expect(JSON.parse(json.stdout)).toEqual({ name: "x", removed: true });
    expect(gateway.deployments).toHaveLength(0);
  });

  it("an unknown name fails with the gateway's message", async () => {
    const r = await b9(env, "model", "remove", "nope");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: There is no deployment nope.\nsee them all with b9 model list\n");
  });
});
