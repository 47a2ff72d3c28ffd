import { execFile, spawn } from "node:child_process";
import { basename } from "node:path";
import { promisify } from "node:util";
import {
  type AgentProc,
  BIN,
  builtinEngineModel,
  builtinEnginePort,
  type CliResult,
  type GatewayProc,
  runB9,
  startGateway,
  startModelAgent,
  startPythonFileServer,
  tempDir,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closedPort } from "./fake-gateway.ts";

/*
 * `b9 chat` and `b9 model pull`: the real b9 binary → b9gateway → agent channel → b9agent → builtin
 * engine with the real SmolLM2.
 */

const execFileP = promisify(execFile);

let gw: GatewayProc;
let agent: AgentProc;
let env: NodeJS.ProcessEnv;

/** A stack trace shows up as "    at fn (file:line)" lines. */
const STACK = /^\s+at /m;
const FRANCE = "What is the capital of France?";

const b9 = (args: string[], o: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> =>
  runB9(args, { ...env, ...o.env }, o.input);

async function key(name: string, scopes: string[]): Promise<{ id: string; key: string }> {
  const res = await gw.api<{ id: string; key: string }>("POST", "/api/v1/keys", { name, scopes });
  return res.body;
}

async function promptTokens(keyId: string): Promise<{ requests: number; prompt_tokens: number }> {
  const res = await gw.api<{ groups: { group: string; requests: number; prompt_tokens: number }[] }>(
    "GET",
    "/api/v1/usage?group_by=key",
  );
  return res.body.groups.find((g) => g.group === keyId) ?? { requests: 0, prompt_tokens: 0 };
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  const worker = await startModelAgent(gw);
  agent = worker.agent;
  await worker.serve("smollm2");
  const app = await key("cli", ["inference"]);
  env = {
    ...process.env,
    BETA9_GATEWAY: gw.url,
    BETA9_API_KEY: app.key,
    BETA9_CLI_CONFIG: `${tempDir()}/cli.json`,
  };
}, 180_000);

afterAll(async () => {
  await agent?.proc.stop();
  await gw?.proc.stop();
});

describe("b9 chat", () => {
  it("one-shot: streams the answer to stdout as it is generated and exits 0", async () => {
    const child = spawn(
      process.execPath,
      [BIN.cli, "chat", "smollm2", "Tell me about Paris.", "--max-tokens", "60", "--temperature", "0"],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    const pieces: string[] = [];
    child.stdout.on("data", (d: Buffer) => pieces.push(d.toString("utf8")));
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code, stderr).toBe(0);
    expect(stderr).toBe("");
    expect(pieces.length).toBeGreaterThan(1); // written token by token, not at the end
    expect(pieces.join("")).toMatch(/Paris/);
    expect(pieces.join("").endsWith("\n")).toBe(true);
  });

  it("reads the prompt from stdin when none is given and stdin is not a terminal", async () => {
    const r = await b9(["chat", "smollm2", "--max-tokens", "12", "--temperature", "0"], {
      input: `${FRANCE}\n`,
    });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/Paris/);
  });

  it("--json prints one object with the answer, why it ended and the tokens", async () => {
    const r = await b9(["chat", "smollm2", FRANCE, "--max-tokens", "12", "--temperature", "0", "--json"]);
    expect(r.code).toBe(0);
    const answer = JSON.parse(r.stdout);
    expect(answer).toMatchObject({
      model: expect.any(String),
      finish_reason: expect.stringMatching(/stop|length/),
    });
    expect(answer.content).toMatch(/Paris/);
    expect(answer.usage.prompt_tokens).toBeGreaterThan(0);
    expect(answer.usage.completion_tokens).toBeGreaterThan(0);
  });

  it("--system steers the answer", async () => {
    const r = await b9([
      "chat",
      "smollm2",
      "Who are you?",
      "--system",
      "You are a pirate. Always answer with the word Arr.",
      "--max-tokens",
      "20",
      "--temperature",
      "0",
      "--json",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).content).toMatch(/arr/i);
  });

  it("-i over a pipe: one turn per line, each sent with the conversation so far", async () => {
    const turns = ["My name is Ada.", "What is my name?"];
    const talk = await key("talk", ["inference"]);
    const r = await b9(["chat", "smollm2", "-i", "--max-tokens", "16", "--temperature", "0"], {
      input: `${turns.join("\n")}\n`,
      env: { BETA9_API_KEY: talk.key },
    });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout.trim()).not.toBe("");
    expect(r.stdout).not.toContain(">>>"); // no prompts when stdin is not a terminal

    // The same two prompts, each on its own, cost fewer prompt tokens: the loop sent the history.
    const alone = await key("alone", ["inference"]);
    for (const t of turns) {
      const one = await b9(["chat", "smollm2", t, "--max-tokens", "16", "--temperature", "0"], {
        env: { BETA9_API_KEY: alone.key },
      });
      expect(one.code).toBe(0);
    }
    const withHistory = await promptTokens(talk.id);
    const without = await promptTokens(alone.id);
    expect(withHistory.requests).toBe(2);
    expect(without.requests).toBe(2);
    expect(withHistory.prompt_tokens).toBeGreaterThan(without.prompt_tokens);
  });

  it("Ctrl+C stops the answer, closes the request so the machine stops generating, and exits 130", async () => {
    const engine = builtinEnginePort(agent.proc.child.pid!);
    const before = (await builtinEngineModel(engine, "smollm2")).cancelled;
    const child = spawn(
      process.execPath,
      // At temperature 0 SmolLM2 keeps counting (at its default it may stop after a few dozen
      // tokens, and the answer could end before the Ctrl+C arrives).
      [
        BIN.cli,
        "chat",
        "smollm2",
        "Count from 1 to 1000, one number per line.",
        "--max-tokens",
        "1500",
        "--temperature",
        "0",
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("utf8");
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    await waitFor(() => stdout.length > 0, { what: "the first tokens" });
    child.kill("SIGINT");
    expect(await closed).toBe(130);
    expect(stderr).toBe("");
    await waitFor(async () => (await builtinEngineModel(engine, "smollm2")).cancelled === before + 1, {
      what: "the engine to stop the generation",
      timeoutMs: 5_000,
    });
  });

  it("flag mistakes are named before anything is sent", async () => {
    const r = await b9(["chat", "smollm2", "hi", "--temperature", "3"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--temperature takes a number from 0 to 2/);
    const noPrompt = await b9(["chat", "smollm2"], { input: "  \n" });
    expect(noPrompt).toMatchObject({ code: 1, stdout: "" });
    expect(noPrompt.stderr).toBe(
      'error: no prompt to send\ngive one as an argument (b9 chat smollm2 "…"), pipe one in, or run b9 chat smollm2 in a terminal to talk\n',
    );
    const jsonLoop = await b9(["chat", "smollm2", "-i", "--json"]);
    expect(jsonLoop.stderr).toMatch(/^error: --json prints one answer, so it needs a prompt\n/);
  });

  it("an unknown model, a bad key, a key without the scope, a rate limit, no machine that fits and a gateway that is down: one line each, the next step, exit 1", async () => {
    const limited = await gw.api<{ key: string }>("POST", "/api/v1/keys", {
      name: "limited",
      scopes: ["inference"],
      rpm_limit: 1,
    });
    expect(
      (await b9(["chat", "smollm2", "Hi", "--max-tokens", "2"], { env: { BETA9_API_KEY: limited.body.key } }))
        .code,
    ).toBe(0);
    const gpuOnly = await b9(
      ["model", "deploy", "gpu-only", "--source", testModelPath(), "--gpu", "nvidia"],
      {
        env: { BETA9_API_KEY: gw.adminKey },
      },
    );
    expect(gpuOnly.code, gpuOnly.stderr).toBe(0);

    const cases: Array<{ env?: NodeJS.ProcessEnv; model?: string; error: RegExp; hint: RegExp }> = [
      {
        env: { BETA9_API_KEY: limited.body.key },
        error: /^error: .*1 requests per minute/,
        hint: /^wait \d+s and try again$/,
      },
      {
        model: "gpu-only",
        error: /^error: .*gpu-only.*nvidia/,
        hint: /^try again shortly; if it persists, b9 machine list shows which machines are READY$/,
      },
      {
        model: "ghost",
        error: /^error: The model `ghost` /,
        hint: /^see the deployed models with b9 model list, or deploy this one with b9 model deploy NAME --source SOURCE$/,
      },
      {
        env: { BETA9_API_KEY: "b9_not_a_key" },
        error: /^error: .*API key/i,
        hint: /^check the API key \(taken from BETA9_API_KEY\)/,
      },
      {
        env: { BETA9_API_KEY: (await key("reader", ["read"])).key },
        error: /^error: .*inference/,
        hint: /^b9 chat needs a key with the inference \(or admin\) scope/,
      },
      {
        env: { BETA9_GATEWAY: `http://127.0.0.1:${await closedPort()}` },
        error: /^error: cannot reach the gateway at http:\/\/127\.0\.0\.1:\d+: connection refused$/,
        hint: /^is the gateway running at .*\? If that address is wrong, change BETA9_GATEWAY\.$/,
      },
    ];
    for (const c of cases) {
      const r = await b9(["chat", c.model ?? "smollm2", FRANCE], { env: c.env });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, r.stderr).toHaveLength(2);
      expect(lines[0]).toMatch(c.error);
      expect(lines[1]).toMatch(c.hint);
      expect(r.stderr).not.toMatch(STACK);
    }
  });
});

describe("b9 model pull, then a cold start in b9 chat", () => {
  it("prints progress lines and a summary, and the first chat shows the model starting", async () => {
    const admin = { BETA9_API_KEY: gw.adminKey };
    const deployed = await b9(["model", "deploy", "cold", "--source", testModelPath(), "--context", "2048"], {
      env: admin,
    });
    expect(deployed.code, deployed.stderr).toBe(0);

    const pull = await b9(["model", "pull", "cold"]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).toMatch(/^pulling on worker$/m);
    expect(pull.stderr).toMatch(/^worker: \w+ 0% \(0 B of 93\.8 MiB\)$/m);
    expect(pull.stderr).toMatch(/^worker: \w+ 100% \(93\.8 MiB of 93\.8 MiB\)$/m);
    expect(pull.stdout).toMatch(
      /^Model cold pulled on worker \(sha256 b179c9523d0e…, 93\.8 MiB\); its first request only loads it\.\n$/,
    );

    const json = await b9(["model", "pull", "cold", "--json"]);
    expect(json.code).toBe(0);
    const events = json.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ status: "success", machines: [{ name: "worker" }] });

    // The model is on the machine but not loaded: the first request is a cold start, and b9 chat says so.
    const chat = await b9(["chat", "cold", FRANCE, "--max-tokens", "12", "--temperature", "0"], {
      env: admin,
    });
    expect(chat.code, chat.stderr).toBe(0);
    expect(chat.stdout).toMatch(/Paris/);
    expect(chat.stderr).toMatch(/^starting cold: /m);
    expect(chat.stderr).toMatch(/^cold is ready \(\d+s\)$/m);
  });

  it("an unknown deployment says how to see the deployed ones", async () => {
    const r = await b9(["model", "pull", "ghost"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*ghost.*\nsee them all with b9 model list\n$/);
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe("on a terminal", () => {
  it("b9 model pull draws a bar, and b9 chat MODEL is a prompt loop", async () => {
    // util-linux `script` gives b9 a pseudo-terminal, as a person's shell would.
    const pty = async (command: string, input = "") => {
      const { stdout } = await execFileP(
        "bash",
        ["-c", `printf '${input}' | script -qefc "${command}" /dev/null`],
        {
          env: { ...env, BETA9_API_KEY: gw.adminKey },
        },
      );
      return stdout;
    };
    const cli = `${process.execPath} ${BIN.cli}`;
    // Downloaded from python's http.server, so the bytes take long enough to draw a bar (a local
    // file whose bytes the machine already holds is only verified and linked).
    const files = await startPythonFileServer([testModelPath()]);
    const source = files.url(basename(testModelPath()));
    const deployed = await b9(["model", "deploy", "tty", "--source", source], {
      env: { BETA9_API_KEY: gw.adminKey },
    });
    expect(deployed.code, deployed.stderr).toBe(0);
    const bar = await pty(`${cli} model pull tty`).finally(() => files.stop());
    expect(bar).toMatch(/worker: \w+(?: \w+)? +[█░]{30} +\d+% +[\d.]+ \w?i?B \/ 93\.8 MiB/);
    expect(bar).toMatch(/Model tty pulled on worker/);

    const talk = await pty(`${cli} chat smollm2 --max-tokens 12 --temperature 0`, `${FRANCE}\\r/exit\\r`);
    expect(talk).toContain("Chatting with smollm2");
    expect(talk).toContain(">>> ");
    expect(talk).toMatch(/Paris/);
  });
});
