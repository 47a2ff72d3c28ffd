import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  type AgentProc,
  allowTestModel,
  askFrance,
  type CliResult,
  childProcesses,
  cliEnv,
  type FileServer,
  freePort,
  type GatewayProc,
  initAgent,
  interruptB9,
  runB9,
  runNginx,
  servePythonFolder,
  startAgent,
  startGateway,
  tempDir,
  testModelPath,
  waitFor,
  waitMachineReady,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { ggufToSafetensors, type HfModelDir } from "../src/models/convert/gguf-to-hf.ts";
import { pullHfRepo } from "../src/models/hf-repo.ts";
import { parseHfRepoSource } from "../src/models/sources.ts";
import { ModelStore } from "../src/models/store.ts";

/*
 * `b9 model deploy NAME --source hf:ORG/REPO`: the real b9 → b9gateway → b9agent, which lists the
 * repository on a Hugging Face stand-in (python3 -m http.server serving the layout Hugging Face serves,
 * the tree listing a static file at its API path), fetches it, converts it to GGUF with llama.cpp's
 * converter once and serves it on the builtin engine. The repository is SmolLM2 made into safetensors.
 */

const python = process.env.BETA9_TEST_CONVERT_PYTHON;
if (!python)
  console.warn(
    "hf-repo.test.ts skipped: BETA9_TEST_CONVERT_PYTHON is not set (run the tests with `npm test`, or export the path scripts/convert-env prints)",
  );

let hf: HfModelDir;
/** The stand-in hub's files (Hugging Face's layout). */
let root: string;
let hub: FileServer;
let gw: GatewayProc;
let agent: AgentProc;
let env: NodeJS.ProcessEnv;

function b9(args: string[], e = env): Promise<CliResult> {
  return runB9(args, e);
}

const storeDir = (a: AgentProc = agent) => join(dirname(a.configPath), "models");
const record = (name: string, a: AgentProc = agent) => {
  const file = join(storeDir(a), "models", `${name}.json`);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : undefined;
};
/** What a failed or stopped pull could leave for a later placement: must be nothing. */
const leftovers = (a: AgentProc = agent) =>
  ["hf-repos", "blobs"].flatMap((d) =>
    (existsSync(join(storeDir(a), d)) ? readdirSync(join(storeDir(a), d)) : []).filter(
      (n) => !/^sha256-[0-9a-f]{64}$/.test(n),
    ),
  );

/**
 * Lay `files` of the repository out as Hugging Face serves them: resolve/REV/FILE and the tree listing;
 * `replace` gives some files other contents; `folder` puts them in a folder of the repository (listed
 * by their path from the top, as the tree API does, beside another folder's files).
 */
async function publish(
  root: string,
  repo: string,
  files: HfModelDir["files"],
  replace: Record<string, Buffer> = {},
  folder = "",
): Promise<void> {
  const at = join(root, repo, "resolve", "main", folder);
  await mkdir(at, { recursive: true });
  for (const f of files) {
    const other = replace[f.name];
    if (other) await writeFile(join(at, f.name), other);
    else await copyFile(join(hf.dir, f.name), join(at, f.name));
  }
  const listing = join(root, "api", "models", repo, "tree", ...(folder ? ["main"] : []));
  await mkdir(listing, { recursive: true });
  const prefix = folder ? `${folder}/` : "";
  const entries = files.map((f) => ({
    type: "file",
    path: `${prefix}${f.name}`,
    size: replace[f.name]?.length ?? f.size,
    oid: f.sha256.slice(0, 40),
    ...(f.name.endsWith(".safetensors") ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
  }));
  // Beside what a conversion reads: a README and a folder, as real repositories have.
  entries.push({ type: "file", path: "README.md", size: 5, oid: "0".repeat(40) });
  entries.push({ type: "directory", path: "onnx", size: 0, oid: "1".repeat(40) });
  // Another folder's config, never published: fetching it would fail the pull.
  if (folder)
    entries.push({ type: "file", path: `${folder}/other/config.json`, size: 2, oid: "2".repeat(40) });
  await writeFile(join(listing, folder || "main"), JSON.stringify(entries));
}

/** An agent joined to `g` whose hf: sources come from the stand-in hub. */
async function hubAgent(g: GatewayProc, name: string, convertPython: string | undefined): Promise<AgentProc> {
  const path = await initAgent(g, { name });
  allowTestModel(path);
  const cfg = YAML.parse(readFileSync(path, "utf8")) as { models: Record<string, unknown> };
  cfg.models.huggingface_url = `http://127.0.0.1:${hub.port}`;
  writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
  return startAgent(path, { env: { BETA9_CONVERT_PYTHON: convertPython } });
}

/**
 * A private hub in the real nginx: every file needs `Authorization: Bearer <token>`, and the weights
 * redirect to a CDN on another host (127.0.0.2), as Hugging Face's do; both log what Authorization
 * they were sent.
 */
async function privateHub(
  token: string,
): Promise<{ url: string; log: () => string[]; stop: () => Promise<void> }> {
  const [port, cdn] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${port}`;
  const nginx = await runNginx(
    (dir) => `  log_format auth '$server_addr $request_uri $status auth=$http_authorization';
  access_log ${dir}/access.log auth;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / {
      if ($http_authorization != "Bearer ${token}") { return 401; }
    }
    location ~ \\.safetensors$ {
      if ($http_authorization != "Bearer ${token}") { return 401; }
      return 302 http://127.0.0.2:${cdn}$request_uri;
    }
  }
  server {
    listen 127.0.0.2:${cdn};
    root ${root};
  }`,
    async () => (await fetch(`${url}/`).catch(() => undefined))?.status === 401,
    "nginx (the private hub) to answer",
  );
  return {
    url,
    log: () => readFileSync(join(nginx.dir, "access.log"), "utf8").trimEnd().split("\n"),
    stop: () => nginx.stop(),
  };
}

/** The machine credential in the agent's config: the bearer of its control API. */
const machineToken = (a: AgentProc) =>
  (YAML.parse(readFileSync(a.configPath, "utf8")) as { machine: { token: string } }).machine.token;

/** The model, asked through the CLI at temperature 0, names Paris. */
async function expectParis(model: string): Promise<void> {
  const chat = await askFrance(model, env);
  expect(chat.code, chat.stderr).toBe(0);
  expect(chat.stdout).toMatch(/Paris/);
}

describe.skipIf(!python)("b9 model deploy --source hf:ORG/REPO (safetensors)", () => {
  beforeAll(async () => {
    const model = testModelPath();
    const maker = new ModelStore({
      dir: tempDir("b9-hf-make-"),
      allowedDirs: [dirname(model)],
      localImport: "link",
    });
    await maker.pull("smol", model);
    hf = await ggufToSafetensors(maker, { from: "smol", python });
    root = tempDir("b9-hub-");
    await publish(root, "acme/smol-st", hf.files);
    await publish(
      root,
      "acme/no-tok",
      hf.files.filter((f) => !f.name.startsWith("tokenizer")),
    );
    await publish(
      root,
      "acme/no-weights",
      hf.files.filter((f) => !f.name.endsWith(".safetensors")),
    );
    // The same weights under another config: other files, so fetched and converted on their own.
    const config = JSON.parse(readFileSync(join(hf.dir, "config.json"), "utf8")) as Record<string, unknown>;
    await publish(root, "acme/smol-other", hf.files, {
      "config.json": Buffer.from(JSON.stringify({ ...config, _name_or_path: "acme/smol-other" })),
    });
    await publish(root, "acme/smol-third", hf.files, {
      "config.json": Buffer.from(JSON.stringify({ ...config, _name_or_path: "acme/smol-third" })),
    });
    await publish(root, "acme/smol-pool", hf.files, {
      "config.json": Buffer.from(JSON.stringify({ ...config, _name_or_path: "acme/smol-pool" })),
    });
    await publish(
      root,
      "acme/collection",
      hf.files,
      { "config.json": Buffer.from(JSON.stringify({ ...config, _name_or_path: "acme/collection/smol" })) },
      "smol",
    );
    hub = await servePythonFolder(root);
    gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
    agent = await hubAgent(gw, "worker", python);
    env = cliEnv(gw);
    await waitFor(async () => (await b9(["machine", "list"])).stdout.includes("READY"), {
      what: "the worker READY in b9 machine list",
      timeoutMs: 60_000,
    });
  }, 600_000);

  afterAll(async () => {
    await agent?.proc.stop();
    await gw?.proc.stop();
    await hub?.stop();
  });

  it("fetches the repository, converts it once to GGUF F16 with progress, never twice, and serves it: Paris", async () => {
    const deployed = await b9([
      "model",
      "deploy",
      "smol",
      "--source",
      "hf:acme/smol-st",
      "--context",
      "2048",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);

    const pull = await b9(["model", "pull", "smol"]);
    expect(pull.code, pull.stderr).toBe(0);
    // Download, then conversion, on the CLI's progress lines.
    expect(pull.stderr).toMatch(/^worker: pulling smol 100%/m);
    expect(pull.stderr).toMatch(
      /^worker: converting smol from safetensors 100% \((\d+) tensors of \1 tensors\)$/m,
    );
    expect(pull.stderr.indexOf("pulling smol")).toBeLessThan(pull.stderr.indexOf("converting smol"));

    // Provenance: the repository (and revision) and its files' hash, the tool and its version.
    expect(record("smol")).toMatchObject({
      format: "gguf",
      quantization: "F16",
      source: "hf:acme/smol-st",
      converted_from: {
        name: "hf:acme/smol-st",
        sha256: hf.sha256,
        format: "safetensors",
        target: "F16",
        converter: { tool: "convert_hf_to_gguf.py", args: ["--outtype", "f16"] },
      },
    });

    // Converted: the fetched repository goes (not twice the disk); the record's provenance finds the GGUF.
    expect(readdirSync(join(storeDir(), "hf-repos"))).toEqual([]);

    // Pulled again before a replica runs (so the machine is asked): no weights fetched, nothing converted.
    const before = record("smol");
    const again = await b9(["model", "pull", "smol", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const seen = again.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { status: string; unit?: string; model?: { sha256: string } });
    expect(seen.some((e) => e.unit === "tensors")).toBe(false);
    expect(seen.some((e) => e.status === "pulling smol")).toBe(false);
    expect(seen.at(-1)?.model?.sha256, again.stdout).toBe(before.sha256);
    expect(record("smol")).toEqual(before);

    await expectParis("smol");

    const ps = await b9(["model", "ps"]);
    expect(ps.stdout).toMatch(
      /smol on worker: .*serves GGUF F16 on builtin .*converted on the machine from safetensors \(hf:acme\/smol-st\) to GGUF F16 by convert_hf_to_gguf\.py llama\.cpp v/,
    );
    expect(leftovers()).toEqual([]);
  }, 600_000);

  it("a machine without the converter copies the repository's conversion another machine made: the pool converts once", async () => {
    const bare = await hubAgent(gw, "bare", undefined);
    try {
      await waitMachineReady(gw, "bare");
      // Files no machine has converted yet: one must convert them, and bare cannot.
      const deployed = await b9([
        "model",
        "deploy",
        "smol-pooled",
        "--source",
        "hf:acme/smol-pool",
        "--min",
        "2",
      ]);
      expect(deployed.code, deployed.stderr).toBe(0);
      const pull = await b9(["model", "pull", "smol-pooled"]);
      expect(pull.code, pull.stderr).toBe(0);
      // Whichever the gateway asked first, bare ends with worker's conversion, and converts nothing.
      expect(pull.stderr).toMatch(/^bare: fetching smol-pooled from worker, which converted it 100%/m);
      expect(pull.stderr).not.toMatch(/^bare: (pulling|converting) smol-pooled/m);
      // worker made the conversion itself. Read from its store, not from this pull's progress: with the
      // deployment's minimum, the gateway's own placement may have had worker convert before this pull
      // asked, and that progress goes to no CLI.
      const made = record("smol-pooled");
      expect(made.converted_from).toMatchObject({ format: "safetensors", name: "hf:acme/smol-pool" });
      expect(made.converted_from.converted_on).toBeUndefined();
      expect(record("smol-pooled", bare)).toMatchObject({
        sha256: made.sha256,
        source: "hf:acme/smol-pool",
        converted_from: { ...made.converted_from, converted_on: "worker" },
      });
      expect(existsSync(join(storeDir(bare), "hf-repos"))).toBe(false);
      expect(leftovers(bare)).toEqual([]);
    } finally {
      await bare.proc.stop();
    }
  }, 300_000);

  it("a folder of a repository (hf:ORG/REPO/FOLDER): only its files are fetched, converted and served: Paris", async () => {
    const source = "hf:acme/collection/smol";
    expect((await b9(["model", "deploy", "smol-folder", "--source", source, "--context", "2048"])).code).toBe(
      0,
    );
    const pull = await b9(["model", "pull", "smol-folder"]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).toMatch(/^worker: converting smol-folder from safetensors 100%/m);
    expect(record("smol-folder")).toMatchObject({
      format: "gguf",
      quantization: "F16",
      source,
      converted_from: { name: source, format: "safetensors", target: "F16" },
    });
    await expectParis("smol-folder");
    expect(leftovers()).toEqual([]);
  }, 600_000);

  it("--quantize: the machine's F16 conversion of those files is reused, then quantised", async () => {
    const pull = await b9([
      "model",
      "pull",
      "smol-q4",
      "--source",
      "hf:acme/smol-st",
      "--quantize",
      "Q4_K_M",
    ]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).not.toMatch(/converting smol-q4 from safetensors/);
    expect(pull.stderr).toMatch(/^worker: quantizing smol-q4 to Q4_K_M 100%/m);
    expect(record("smol-q4.source")).toMatchObject({ sha256: record("smol").sha256 });
    expect(record("smol-q4")).toMatchObject({
      quantization: "Q4_K_M",
      converted_from: { name: "smol-q4.source", quantization: "F16", target: "Q4_K_M" },
    });
    expect(leftovers()).toEqual([]);
  }, 300_000);

  it("Ctrl-C during the conversion stops it on the machine and leaves no model; a later pull converts afresh", async () => {
    expect((await b9(["model", "deploy", "smol-stop", "--source", "hf:acme/smol-other"])).code).toBe(0);
    const { code, stderr } = await interruptB9(["model", "pull", "smol-stop"], env, /converting smol-stop/);
    expect(stderr).toMatch(/^worker: pulling smol-stop/m);
    expect(code).toBe(130);
    await waitFor(
      () =>
        childProcesses(agent.proc.child.pid!).every(
          (p) => !/convert_hf_to_gguf|RUN_CONVERT|runpy/.test(p.cmd),
        ),
      { what: "no converter left running under the agent", timeoutMs: 30_000 },
    );
    expect(record("smol-stop")).toBeUndefined();
    expect(leftovers()).toEqual([]);
    const again = await b9(["model", "pull", "smol-stop"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/^worker: converting smol-stop from safetensors 100%/m);
    expect(record("smol-stop")).toMatchObject({ converted_from: { format: "safetensors", target: "F16" } });
  }, 300_000);

  it("two pulls of one repository at once, under two names, fetch and convert it once, and both see its progress", async () => {
    const pull = async (model: string) => {
      const res = await fetch(`${agent.controlUrl}/inference/pull`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${machineToken(agent)}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ model, source: "hf:acme/smol-third", stream: true }),
      });
      const lines = (await res.text())
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as { status: string; completed?: number; total?: number; unit?: string });
      return { status: res.status, lines };
    };
    const converters = () => childProcesses(agent.proc.child.pid!).filter((p) => /runpy/.test(p.cmd)).length;
    let most = 0;
    let running = true;
    const both = Promise.all([pull("pair-a"), pull("pair-b")]).finally(() => {
      running = false;
    });
    // Sampled while both run: never two converters at once.
    await waitFor(
      () => {
        most = Math.max(most, converters());
        return !running;
      },
      { what: "both pulls to answer", timeoutMs: 240_000, intervalMs: 100 },
    );
    const [a, b] = await both;
    expect([a.status, b.status]).toEqual([200, 200]);
    expect([a.lines.at(-1)?.status, b.lines.at(-1)?.status]).toEqual(["success", "success"]);
    expect(most).toBeLessThanOrEqual(1);
    // Each caller sees the one download and the one conversion under its own name, to the end.
    for (const [name, { lines }] of [
      ["pair-a", a],
      ["pair-b", b],
    ] as const) {
      expect(lines.some((l) => l.status === `pulling ${name}` && l.completed === l.total)).toBe(true);
      const converting = lines.filter((l) => l.status === `converting ${name} from safetensors`);
      expect(converting.at(-1), JSON.stringify(lines)).toMatchObject({ unit: "tensors" });
      expect(converting.at(-1)?.completed).toBe(converting.at(-1)?.total);
    }
    expect(record("pair-a").sha256).toBe(record("pair-b").sha256);
    expect(record("pair-a").converted_from.sha256).toBe(record("pair-b").converted_from.sha256);
    expect(leftovers()).toEqual([]);
  }, 300_000);

  it("a repository without a tokenizer, or without safetensors files: the model, the step and the reason, nothing kept", async () => {
    for (const [name, repo, reason] of [
      [
        "smol-notok",
        "acme/no-tok",
        "the repository has no tokenizer \\(tokenizer\\.json or tokenizer\\.model\\)",
      ],
      ["smol-noweights", "acme/no-weights", "the repository has no \\.safetensors files"],
    ] as const) {
      const deployed = await b9(["model", "deploy", name, "--source", `hf:${repo}`]);
      expect(deployed.code, deployed.stderr).toBe(0);
      const pull = await b9(["model", "pull", name]);
      expect(pull.code).toBe(1);
      expect(pull.stderr).toMatch(
        new RegExp(
          `^error: pulling ${name} from hf:${repo.replace("/", "\\/")} failed at listing the repository: ${reason}`,
          "m",
        ),
      );
      expect(record(name)).toBeUndefined();
    }
    expect(leftovers()).toEqual([]);
  }, 300_000);

  it("a machine without the converter's Python says how to install it, through the gateway to the CLI", async () => {
    const g = await startGateway({ args: ["--heartbeat-interval", "1s"] });
    const bare = await hubAgent(g, "bare", undefined);
    try {
      const e = cliEnv(g);
      await waitFor(async () => (await b9(["machine", "list"], e)).stdout.includes("READY"), {
        what: "the bare machine READY in b9 machine list",
        timeoutMs: 60_000,
      });
      expect((await b9(["model", "deploy", "smol", "--source", "hf:acme/smol-st"], e)).code).toBe(0);
      const pull = await b9(["model", "pull", "smol"], e);
      expect(pull.code).toBe(1);
      expect(pull.stderr).toMatch(
        /^error: this machine has no model converter: install Debian's torch \(`apt-get install python3-torch`\), run scripts\/convert-env and set BETA9_CONVERT_PYTHON/m,
      );
      // The gateway's own answer keeps the agent's code, for scripts.
      const res = await fetch(`${g.url}/api/v1/deployments/smol/pull`, {
        method: "POST",
        headers: { authorization: `Bearer ${g.adminKey}` },
      });
      const last = JSON.parse((await res.text()).trimEnd().split("\n").at(-1)!) as {
        error?: { code: string };
      };
      expect(last.error?.code).toBe("converter_unavailable");
      expect(record("smol", bare)).toBeUndefined();
      expect(leftovers(bare)).toEqual([]);
    } finally {
      await bare.proc.stop();
      await g.proc.stop();
    }
  }, 300_000);
  it("a private repository: the configured token goes to the hub only, never to the CDN it redirects to, never logged; leftovers of a dead agent are swept at start", async () => {
    const token = "hf_b9test_private_0123456789";
    const priv = await privateHub(token);
    const path = await initAgent(gw, { name: "private" });
    allowTestModel(path);
    const cfg = YAML.parse(readFileSync(path, "utf8")) as { models: Record<string, unknown> };
    cfg.models.huggingface_url = priv.url;
    cfg.models.huggingface_token = token;
    writeFileSync(path, YAML.stringify(cfg), { mode: 0o600 });
    // What an agent that died mid-fetch (or before converting) leaves: gone once the next one starts.
    const repos = join(dirname(path), "models", "hf-repos");
    await mkdir(join(repos, ".tmp-0123456789abcdef"), { recursive: true });
    await writeFile(join(repos, ".tmp-0123456789abcdef", "model.safetensors"), Buffer.alloc(4096));
    await mkdir(join(repos, `sha256-${"e".repeat(64)}`), { recursive: true });
    const other = await startAgent(path, { env: { BETA9_CONVERT_PYTHON: python, HF_TOKEN: undefined } });
    try {
      await waitFor(() => readdirSync(repos).length === 0, {
        what: "the dead agent's repository folders swept",
        timeoutMs: 30_000,
      });
      const res = await fetch(`${other.controlUrl}/inference/pull`, {
        method: "POST",
        headers: { authorization: `Bearer ${machineToken(other)}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "smol-private", source: "hf:acme/smol-st" }),
      });
      expect(res.status, await res.clone().text()).toBe(201);
      expect(record("smol-private", other)).toMatchObject({
        converted_from: { name: "hf:acme/smol-st", sha256: hf.sha256, format: "safetensors" },
      });
      // What the agent asked (not the probe that waited for nginx).
      const log = priv.log().filter((l) => l.includes(" /acme/") || l.includes(" /api/"));
      const hubLines = log.filter((l) => l.startsWith("127.0.0.1 "));
      const cdnLines = log.filter((l) => l.startsWith("127.0.0.2 "));
      // The listing and the small files from the hub, with the token; the weights redirected.
      expect(hubLines.some((l) => l.includes("/api/models/acme/smol-st/tree/main 200"))).toBe(true);
      expect(
        hubLines.every((l) => l.endsWith(`auth=Bearer ${token}`)),
        hubLines.join("\n"),
      ).toBe(true);
      expect(hubLines.some((l) => /\.safetensors 302 /.test(l))).toBe(true);
      expect(
        cdnLines.some((l) => /\.safetensors 200 auth=-$/.test(l)),
        cdnLines.join("\n"),
      ).toBe(true);
      expect(
        cdnLines.every((l) => l.endsWith("auth=-")),
        cdnLines.join("\n"),
      ).toBe(true);
      expect(readdirSync(repos)).toEqual([]);
      expect(other.proc.lines.some((l) => l.includes(token))).toBe(false);
      // Without a token, the hub's 401 says what to configure.
      const tokenless = new ModelStore({ dir: tempDir("b9-no-token-"), huggingFaceBaseUrl: priv.url });
      const source = parseHfRepoSource("hf:acme/smol-st");
      if (!source) throw new Error("hf:acme/smol-st is a repository source");
      const saved = process.env.BETA9_CONVERT_PYTHON;
      process.env.BETA9_CONVERT_PYTHON = python;
      try {
        await expect(
          pullHfRepo(tokenless, {
            name: "smol-private",
            sourceName: "smol-private.source",
            source,
            restricted: false,
            onProgress: () => {},
          }),
        ).rejects.toThrow(
          /^pulling smol-private from hf:acme\/smol-st failed at listing the repository: .* answered 401: no such repository or revision, or it is private and no Hugging Face token is configured \(models\.huggingface_token in the agent's config, or HF_TOKEN\)$/,
        );
      } finally {
        process.env.BETA9_CONVERT_PYTHON = saved;
      }
    } finally {
      await other.proc.stop();
      await priv.stop();
    }
  }, 300_000);
});
