import { execFile } from "node:child_process";
import { cpSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve, sep } from "node:path";
import { promisify } from "node:util";
import {
  type GatewayProc,
  inferenceKey,
  type Launch,
  type ModelAgent,
  startGateway,
  startModelAgent,
  tempDir,
  testPython,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * Install without a clone: scripts/pack's tarballs installed by the machine's OS npm (Node 20 here,
 * older than the Node 24 the programs need) into a fresh prefix, and only that prefix run; the Python
 * SDK built as a wheel and installed into a fresh venv.
 */

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../../..");
const OS_NPM = "/usr/bin/npm";
const OS_NODE = "/usr/bin/node";
/** What a machine without a clone has on PATH: no repository node_modules/.bin, so no Node 24. */
const OS_PATH = "/usr/bin:/bin";
const MODEL = "smollm2-installed";
const INSTALL_MS = 10 * 60_000;

let packDir: string;
let prefix: string;

/**
 * Proc runs `[...prefix, node, script, ...args]`: drop the repository's node and script, and run the
 * installed command instead, found by its shebang on the OS node.
 */
function installed(command: string): Launch {
  return {
    prefix: ["/bin/sh", "-c", `shift 2; PATH=${OS_PATH} exec "$0" "$@"`, join(prefix, "bin", command)],
  };
}

async function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return execFileP(command, args, {
    env: { ...process.env, PATH: OS_PATH, ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
}

describe("the npm packages, installed by the OS npm into a prefix", () => {
  let gw: GatewayProc;
  let agent: ModelAgent;

  beforeAll(async () => {
    packDir = tempDir("b9-pack-");
    prefix = tempDir("b9-prefix-");
    const { stdout } = await execFileP(join(ROOT, "scripts/pack"), [packDir], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const tarballs = stdout.trim().split("\n");
    const programs = ["cli", "gateway", "agent"].map((p) =>
      tarballs.find((t) => t.endsWith(`beta9-${p}-0.1.0.tgz`)),
    );
    expect(programs.every(Boolean), `scripts/pack printed:\n${stdout}`).toBe(true);
    // The registry packages come from npm's cache, as they would from the registry on a user's machine.
    await run(OS_NPM, [
      "install",
      "--global",
      "--prefix",
      prefix,
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...(programs as string[]),
    ]);
  }, INSTALL_MS);

  afterAll(async () => {
    await agent?.agent.proc.stop();
    await gw?.proc.stop();
    // Over a GB (three Node binaries, node-llama-cpp's prebuilt engines): removed here without
    // blocking, not by the run's synchronous clean-up, which would stall vitest past its teardown limit.
    await rm(prefix, { recursive: true, force: true });
  }, INSTALL_MS);

  it("packs the SDK with its declaration files and no TypeScript sources", async () => {
    const sdk = readdirSync(packDir).find((f) => f.startsWith("beta9-sdk-"));
    expect(sdk).toBeDefined();
    const { stdout } = await run("tar", ["-tzf", join(packDir, sdk as string)]);
    const files = stdout.trim().split("\n");
    expect(files).toContain("package/src/index.js");
    expect(files).toContain("package/src/index.d.ts");
    expect(files).toContain("package/node_modules/@beta9/protocol/src/index.d.ts");
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
  });

  it("packs the agent as one minified bundle with its engine's entry, the bundled packages' licences, and only what must stay a package", async () => {
    const agentTgz = readdirSync(packDir).find((f) => f.startsWith("beta9-agent-"));
    expect(agentTgz).toBeDefined();
    const tgz = join(packDir, agentTgz as string);
    const files = (await run("tar", ["-tzf", tgz])).stdout.trim().split("\n");
    expect(files).toContain("package/src/main.js");
    expect(files).toContain("package/src/builtin/main.js");
    // No compiled module per source file, no workspace package carried along.
    expect(files.filter((f) => f.startsWith("package/node_modules/"))).toEqual([]);
    expect(files.filter((f) => f.startsWith("package/src/")).length).toBeLessThan(10);
    const manifest = JSON.parse((await run("tar", ["-xzOf", tgz, "package/package.json"])).stdout);
    expect(Object.keys(manifest.dependencies).sort()).toEqual(
      ["ink", "node", "node-llama-cpp", "pino", "pino-pretty", "react"].sort(),
    );
    const licences = (await run("tar", ["-xzOf", tgz, "package/THIRD_PARTY_LICENSES.txt"])).stdout;
    for (const bundled of ["fastify", "undici", "yaml", "commander"])
      expect(licences).toMatch(new RegExp(`^${bundled} \\d`, "m"));
    // ASCII only: V8 keeps a source with any other character as two bytes per character.
    const main = (await run("tar", ["-xzOf", tgz, "package/src/main.js"])).stdout;
    expect(main.length).toBeGreaterThan(100_000);
    expect(/[\u0080-\uffff]/.test(main)).toBe(false);
  });

  it(
    "runs b9, b9gateway and b9agent from the prefix on the OS node, and answers a chat on the test model",
    async () => {
      const { stdout: osNode } = await run(OS_NODE, ["--version"]);
      expect(Number(osNode.trim().slice(1).split(".")[0])).toBeLessThan(24);
      const { stdout: version } = await run(join(prefix, "bin/b9"), ["--version"]);
      expect(version.trim()).toBe("0.1.0");

      gw = await startGateway(installed("b9gateway"));
      // The join token comes from the installed CLI, as an operator would make it.
      const cliConfig = join(tempDir("b9-cli-"), "config.json");
      const env = { BETA9_CLI_CONFIG: cliConfig };
      await run(join(prefix, "bin/b9"), ["login", "--gateway", gw.url, "--api-key", gw.adminKey], env);
      const { stdout: token } = await run(join(prefix, "bin/b9"), ["token", "create", "--json"], env);
      agent = await startModelAgent(gw, { ...installed("b9agent"), token: JSON.parse(token).token });
      await agent.serve(MODEL);

      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${await inferenceKey(gw)}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: MODEL,
          messages: [{ role: "user", content: "Say hello." }],
          max_tokens: 8,
        }),
      });
      const body = (await res.json()) as { choices?: { message: { content: string } }[] };
      expect(res.status, JSON.stringify(body)).toBe(200);
      expect(body.choices?.[0]?.message.content.length).toBeGreaterThan(0);

      // The dashboard came in the gateway's tarball (scripts/pack builds it with scripts/setup).
      const ui = await fetch(`${gw.url}/ui/`);
      expect(ui.status).toBe(200);
      expect(await ui.text()).toContain("<!doctype html>");

      // The OS node's shim passes SIGTERM on and the program's exit code back; nothing is left running.
      expect(await agent.agent.proc.stop("SIGTERM")).toBe(0);
      expect(await gw.proc.stop("SIGTERM")).toBe(0);
      const ps = await run("ps", ["-eo", "pid=,args="]);
      expect(ps.stdout.split("\n").filter((line) => line.includes(prefix))).toEqual([]);
    },
    INSTALL_MS,
  );

  it("says in one sentence that Node 24 is missing when the node it brings is gone, and exits non-zero", async () => {
    // A copy of the installed CLI without its "node" package, as after an install with scripts refused.
    const copy = join(tempDir("b9-no-node-"), "cli");
    const cli = join(prefix, "lib/node_modules/@beta9/cli");
    const nodePackage = join(cli, "node_modules", "node");
    cpSync(cli, copy, {
      recursive: true,
      filter: (src) => src !== nodePackage && !src.startsWith(nodePackage + sep),
    });
    const err = await run(OS_NODE, [join(copy, "bin/b9.js"), "--version"]).catch((e: unknown) => e);
    const { code, stderr } = err as { code: number; stderr: string };
    expect(code).toBe(1);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/^b9: needs Node\.js 24 and runs on 20\.[\d.]+ here; the npm package "node"/);
    expect(stderr).toContain("reinstall b9 with npm install -g");
  });
});

describe("the Python SDK's wheel", () => {
  let wheel: string;

  beforeAll(async () => {
    const out = tempDir("b9-wheel-");
    await execFileP(testPython(), ["-m", "build", "--wheel", "--outdir", out, join(ROOT, "sdk/python")]);
    const file = readdirSync(out).find((f) => f.endsWith(".whl"));
    expect(file).toBeDefined();
    wheel = join(out, file as string);
  }, INSTALL_MS);

  it(
    "installs into a fresh venv, which then imports beta9's inference",
    async () => {
      const venv = tempDir("b9-venv-");
      await execFileP("python3", ["-m", "venv", venv]);
      const python = join(venv, "bin/python");
      await execFileP(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel]);
      const { stdout } = await execFileP(python, [
        "-c",
        "from beta9 import inference; print(callable(inference.chat), inference.__name__)",
      ]);
      expect(stdout.trim()).toBe("True beta9.inference");
    },
    INSTALL_MS,
  );

  it("is refused by pip on a Python older than it supports, with pip's sentence naming both", async () => {
    // pip judges a wheel for another interpreter's version the way it would on that interpreter.
    const err = await execFileP(testPython(), [
      "-m",
      "pip",
      "download",
      "--disable-pip-version-check",
      "--no-deps",
      "--only-binary=:all:",
      "--python-version",
      "3.8",
      "--dest",
      tempDir("b9-py38-"),
      wheel,
    ]).catch((e: unknown) => e);
    const { code, stderr } = err as { code: number; stderr: string };
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/requires a different Python: 3\.8\.0 not in '>=3\.9'/);
  });
});
