import { existsSync, readdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import {
  agentStoreDir,
  askFrance,
  builtQuantizeTool,
  type CliResult,
  cliEnv,
  type GatewayProc,
  type ModelAgent,
  runB9,
  startGateway,
  startModelAgent,
  storedRecord,
  TEST_MODEL,
  testModelPath,
  waitFor,
  waitMachineReady,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/*
 * A deployment's conversion is made once in the pool: the real b9 → b9gateway → two real b9agents.
 * The first machine placed quantizes the GGUF with llama.cpp's tool; the second gets an offer with its
 * pull and copies those bytes from the first through the gateway (each machine's own channel), checks
 * their sha256, and serves them without converting. A machine that serves other bytes than it claimed
 * is caught by that check, and the machine fetching converts for itself.
 */

let gw: GatewayProc;
const agents = new Map<string, ModelAgent>();
let env: NodeJS.ProcessEnv;

// The wire contract as a machine uses it (protocol/channel.ts): the path, the machine's id, the ticket.
const POOL_COPY_PATH = "/api/v1/agent/copies";
const MACHINE_ID_HEADER = "x-beta9-machine-id";
const POOL_TICKET_HEADER = "x-beta9-pool-ticket";
const b9 = (args: string[]): Promise<CliResult> => runB9(args, env);
const byName = (name: string) => agents.get(name)!;
const storeOf = (a: ModelAgent) => agentStoreDir(a.agent.configPath);
const record = (a: ModelAgent, name: string) => storedRecord(a.agent.configPath, name);
const builtTool = (a: ModelAgent) => builtQuantizeTool(a.agent.configPath);
const tmpLeft = (a: ModelAgent) =>
  existsSync(join(storeOf(a), "blobs"))
    ? readdirSync(join(storeOf(a), "blobs")).filter((f) => f.startsWith(".tmp"))
    : [];

/**
 * Nothing half-made left in the machine's blobs once what runs there has ended: the gateway keeps the
 * deployment's minimum meanwhile, so a pull of its own may still be writing when the CLI's returns.
 */
async function noPartialFiles(a: ModelAgent): Promise<void> {
  await waitFor(() => tmpLeft(a).length === 0, {
    what: "no .tmp- file left in the machine's blobs",
    timeoutMs: 60_000,
  });
}

async function statusOf(name: string): Promise<string | undefined> {
  const { machines } = JSON.parse((await b9(["machine", "list", "--json"])).stdout) as {
    machines: { name: string; status: string }[];
  };
  return machines.find((m) => m.name === name)?.status;
}

async function startWorker(name: string): Promise<ModelAgent> {
  const a = await startModelAgent(gw, { name });
  agents.set(name, a);
  await waitMachineReady(gw, name);
  return a;
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  env = cliEnv(gw);
  await startWorker("alpha");
  await startWorker("beta");
}, 180_000);

afterAll(async () => {
  for (const a of agents.values()) await a.agent.proc.stop();
  await gw?.proc.stop();
});

// Quantizing on a shared 2-core machine: seconds when quiet, a minute or more under load.
describe("a conversion made once for the pool", { timeout: 300_000 }, () => {
  let first: string;
  let second: string;
  let sha256: string;

  it("the second machine copies the first machine's conversion through the gateway instead of converting", async () => {
    const deployed = await b9([
      "model",
      "deploy",
      "smol-pool",
      "--source",
      testModelPath(),
      "--quantize",
      "Q8_0",
      "--min",
      "2",
    ]);
    expect(deployed.code, deployed.stderr).toBe(0);
    const pull = await b9(["model", "pull", "smol-pool"]);
    expect(pull.code, pull.stderr).toBe(0);
    // Which machine converted is read from the stores, not from the pull's progress: the deployment's
    // minimum has the gateway place its replicas meanwhile, so the conversion may be the gateway's own
    // pull (not shown to this one), the copy this pull's.
    const converters = ["alpha", "beta"].filter((n) => {
      const r = record(byName(n), "smol-pool");
      return r?.converted_from !== undefined && r.converted_from.converted_on === undefined;
    });
    expect(converters, pull.stderr).toHaveLength(1);
    first = converters[0]!;
    second = first === "alpha" ? "beta" : "alpha";
    expect(pull.stderr).toMatch(
      new RegExp(`^${second}: fetching smol-pool from ${first}, which converted it 100%`, "m"),
    );
    expect(pull.stderr).not.toMatch(new RegExp(`^${second}: quantizing`, "m"));

    const made = record(byName(first), "smol-pool");
    const copy = record(byName(second), "smol-pool");
    sha256 = made.sha256;
    expect(made.converted_from).toMatchObject({ sha256: TEST_MODEL.sha256, target: "Q8_0" });
    expect(made.converted_from.converted_on).toBeUndefined();
    // The same bytes, the same provenance (source, tool, arguments), and where they were made.
    expect(copy).toMatchObject({
      sha256: made.sha256,
      size: made.size,
      quantization: "Q8_0",
      source: made.source,
      owner: made.owner,
      converted_from: { ...made.converted_from, converted_on: first },
    });
    expect(existsSync(join(storeOf(byName(second)), "blobs", `sha256-${sha256}`))).toBe(true);
    // Nothing of a conversion on the second machine: no source fetched, no tool built, no partial file.
    expect(record(byName(second), "smol-pool.source")).toBeUndefined();
    expect(builtTool(byName(first))).toBe(true);
    expect(builtTool(byName(second))).toBe(false);
    await noPartialFiles(byName(second));
  });

  it("the gateway hands a conversion's bytes only to a machine it offered them to", async () => {
    const other = byName(first);
    const me = byName(second);
    const url = `${gw.url}${POOL_COPY_PATH}/${sha256}`;
    const get = async (headers: Record<string, string>) => {
      const res = await fetch(url, { headers });
      return { status: res.status, body: (await res.json()) as { error: { code: string; message: string } } };
    };
    // No credential; a machine's credential with another machine's id; a real machine without a ticket;
    // a made-up ticket.
    expect(await get({})).toMatchObject({ status: 401, body: { error: { code: "credential_invalid" } } });
    expect(
      await get({ authorization: `Bearer ${me.token}`, [MACHINE_ID_HEADER]: other.machineId }),
    ).toMatchObject({ status: 403, body: { error: { code: "credential_machine_mismatch" } } });
    const mine = { authorization: `Bearer ${me.token}`, [MACHINE_ID_HEADER]: me.machineId };
    expect(await get(mine)).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
    expect(await get({ ...mine, [POOL_TICKET_HEADER]: "x".repeat(43) })).toMatchObject({
      status: 403,
      body: { error: { code: "forbidden", message: expect.stringMatching(/not offered that conversion/) } },
    });
    // The agent's own route for the bytes answers only the gateway, over the channel.
    const direct = await me.control("GET", `/models/blobs/${sha256}?owner=x`);
    expect(direct.status).toBe(403);
  });

  it("the copy serves: it answers Paris, and the placement says it was copied, not converted again", async () => {
    await byName(first).agent.proc.stop();
    await waitFor(async () => (await statusOf(first)) !== "READY", {
      what: `${first} no longer READY`,
      timeoutMs: 60_000,
    });
    const chat = await askFrance("smol-pool", env);
    expect(chat.code, chat.stderr).toBe(0);
    expect(chat.stdout).toMatch(/Paris/);
    const ps = await b9(["model", "ps"]);
    expect(ps.stdout).toMatch(
      new RegExp(
        `smol-pool on ${second}: .*serves GGUF Q8_0 on builtin .*, quantized on ${first} from Q4_1 by llama-quantize .* as the deployment asks \\(quantize Q8_0\\), copied from there through the gateway \\(sha256 checked\\) rather than converted again`,
      ),
    );
  });

  it("bytes that do not hash to what the holder claimed are refused, and the machine converts for itself", async () => {
    // The holder's blob changes behind its record, as on a machine that lies about what it serves.
    const holder = byName(second);
    const blob = join(storeOf(holder), "blobs", `sha256-${sha256}`);
    const fh = await open(blob, "r+");
    try {
      await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, 8 * 1024 * 1024);
    } finally {
      await fh.close();
    }
    const gamma = await startWorker("gamma");
    const pull = await b9(["model", "pull", "smol-pool"]);
    expect(pull.code, pull.stderr).toBe(0);
    // The holder there is itself a copy: the offer names the machine that made the conversion.
    expect(pull.stderr).toMatch(
      new RegExp(`^gamma: fetching smol-pool from ${second}, which holds ${first}'s conversion`, "m"),
    );
    expect(pull.stderr).toMatch(
      new RegExp(
        `^gamma: could not fetch smol-pool from ${second} \\(.*sha256.*\\); converting it here$`,
        "m",
      ),
    );
    expect(pull.stderr).toMatch(/^gamma: quantizing smol-pool to Q8_0 100%/m);
    // Its own conversion: the same bytes the first machine made (llama.cpp's tool is deterministic).
    const own = record(gamma, "smol-pool");
    expect(own).toMatchObject({ sha256, converted_from: { target: "Q8_0" } });
    expect(own.converted_from.converted_on).toBeUndefined();
    await noPartialFiles(gamma);
    // The gateway offers that holder no more.
    expect(gw.proc.lines.join("\n")).toMatch(
      /smol-pool: the copy sent to gamma was not what its holder claimed.*; that holder is not offered again/,
    );
  });
});
