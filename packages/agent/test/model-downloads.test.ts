import { createReadStream, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, dirname, join } from "node:path";
import {
  type AgentProc,
  type FileServer,
  type GatewayProc,
  initAgent,
  startAgent,
  startGateway,
  startPythonFileServer,
  TEST_MODEL,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";

/*
 * The agent's model downloads against real servers: python3 -m http.server (which sends
 * Content-Length and closes the connection after the body), and a small node:http server for what
 * python cannot do (endless or broken-off streams, redirects, errors). Pulls carry an owner the way a
 * gateway sends a deployment's; pulls without one are the machine owner's, by hand.
 */

const MiB = 1024 * 1024;
const MAX_MODEL_BYTES = 120 * MiB; // above the 98 MB test model
const MAX_PARTIAL_BYTES = 20 * MiB; // below two 12 MiB broken-off downloads
const CUT_AFTER = 12 * MiB;

// biome-ignore lint/suspicious/noExplicitAny: the control API's JSON answers, of many shapes
type Answer = { status: number; body: Record<string, any> };

interface ModelAgent {
  proc: AgentProc;
  /** The agent's model store folder. */
  store: string;
  control(method: string, path: string, body?: unknown): Promise<Answer>;
}

let gw: GatewayProc;
let python: FileServer;
let pyUrl: string;
let pyPort: number;
let odd: Server;
let oddUrl: string;
let allowed: Server;
let allowedUrl: string;
let closedPort: number;
let a: ModelAgent;
let b: ModelAgent;
const oldPartial = "0123456789abcdef0123456789abcdef.gguf";
const freshPartial = "fedcba9876543210fedcba9876543210.gguf";

const modelUrl = () => `${pyUrl}/${basename(testModelPath())}`;

/** The TCP connections to or from `port` on this host (/proc/net/tcp), as the kernel sees them. */
function connections(port: number): { local: boolean; state: string; tx: number; rx: number }[] {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter(([, local, remote]) => local?.endsWith(hex) || remote?.endsWith(hex))
    .map(([, local, , state, queues]) => {
      const [tx, rx] = (queues ?? "0:0").split(":").map((q) => Number.parseInt(q, 16));
      return { local: local!.endsWith(hex), state: state!, tx: tx!, rx: rx! };
    })
    .filter((c) => c.state !== "0A" && c.state !== "06"); // not listening, not long gone (TIME_WAIT)
}

/**
 * The download python serves now: closed by python (FIN_WAIT on its side, CLOSE_WAIT or nothing on
 * the agent's: the end of the body and the FIN wait in the sockets), blocked (the sockets are full), or flowing.
 */
function pythonSays(port: number): "closed" | "blocked" | "flowing" {
  const live = connections(port);
  const agentSide = live.find((c) => !c.local);
  const pythonClosed = live.some((c) => c.local && (c.state === "04" || c.state === "05"));
  if (agentSide === undefined || agentSide.state === "08" || pythonClosed) return "closed";
  return live.some((c) => c.local && c.tx > 0) ? "blocked" : "flowing";
}

/**
 * Make agent `pid` the reader a stalled disk makes it, near the end of python's body: stopped until
 * python has sent what it can and closed, then running a millisecond in ten until `answered`.
 */
async function stallNearTheEnd(pid: number, answered: () => boolean): Promise<void> {
  const poll = { intervalMs: 1, timeoutMs: 10_000 };
  let said = pythonSays(pyPort);
  while (said !== "closed" && !answered()) {
    process.kill(pid, "SIGSTOP");
    try {
      await waitFor(() => pythonSays(pyPort) !== "flowing", {
        ...poll,
        what: "python to fill the agent's socket",
      });
    } finally {
      said = pythonSays(pyPort);
      process.kill(pid, "SIGCONT");
    }
    if (said !== "closed")
      await waitFor(() => answered() || (connections(pyPort).find((c) => !c.local)?.rx ?? 0) === 0, poll);
  }
  try {
    while (!answered()) {
      process.kill(pid, "SIGSTOP");
      await new Promise((r) => setTimeout(r, 10));
      process.kill(pid, "SIGCONT");
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    process.kill(pid, "SIGCONT");
  }
}

async function modelAgent(name: string, before?: (store: string) => Promise<void>): Promise<ModelAgent> {
  const configPath = await initAgent(gw, { name });
  const cfg = YAML.parse(readFileSync(configPath, "utf8"));
  cfg.models = {
    allowed_dirs: [dirname(testModelPath())],
    max_model_bytes: MAX_MODEL_BYTES,
    max_partial_bytes: MAX_PARTIAL_BYTES,
    allow_private_sources: ["127.0.0.2"],
  };
  writeFileSync(configPath, YAML.stringify(cfg), { mode: 0o600 });
  const store = join(dirname(configPath), "models");
  await before?.(store);
  const proc = await startAgent(configPath);
  return {
    proc,
    store,
    async control(method, path, body) {
      const res = await fetch(proc.controlUrl + path, {
        method,
        headers: {
          authorization: `Bearer ${cfg.machine.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(120_000),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : {} };
    },
  };
}

function alive(agent: ModelAgent): boolean {
  return agent.proc.proc.child.exitCode === null && agent.proc.proc.child.signalCode === null;
}

function partials(agent: ModelAgent): string[] {
  try {
    return readdirSync(join(agent.store, "downloads")).filter((f) => f.endsWith(".partial"));
  } catch {
    return [];
  }
}

function partialUrls(agent: ModelAgent): string[] {
  return partials(agent).map(
    (f) => JSON.parse(readFileSync(join(agent.store, "downloads", `${f}.json`), "utf8")).url as string,
  );
}

async function listen(server: Server, host: string): Promise<string> {
  await new Promise<void>((r) => server.listen(0, host, r));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  const model = testModelPath();
  python = await startPythonFileServer([model]);
  pyPort = python.port;
  pyUrl = `http://127.0.0.1:${pyPort}`;

  // What python cannot do: bodies without a length that never end or break off, cuts, redirects, errors.
  const seen = new Set<string>();
  odd = createServer((req, res) => {
    const url = req.url ?? "/";
    const first = !seen.has(url);
    seen.add(url);
    if (url === "/endless") {
      // No length, zeros far past any sane model: the agent must stop on its own (256 MiB at most here).
      res.writeHead(200, { "content-type": "application/octet-stream" });
      let sent = 0;
      const more = () => {
        while (sent < 256 * MiB) {
          sent += MiB;
          if (!res.write(Buffer.alloc(MiB))) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    } else if (url.startsWith("/reset/") && first) {
      // Chunked, no Range support, reset after 6 MiB; asked again, the file is gone.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.write(readFileSync(model).subarray(0, 6 * MiB), () => res.destroy());
    } else if (url.startsWith("/cut/") && first) {
      // Range-capable, with a length, broken off after 12 MiB; asked again (to resume), the file is gone.
      res.writeHead(200, { "content-length": statSync(model).size, "accept-ranges": "bytes", etag: '"m"' });
      res.write(readFileSync(model).subarray(0, CUT_AFTER), () => res.destroy());
    } else {
      res.writeHead(404).end();
    }
  });
  oddUrl = await listen(odd, "127.0.0.1");
  // A server on 127.0.0.2, which the agents' config allows workspaces' sources to reach.
  allowed = createServer((req, res) => {
    if (req.url === "/model.gguf") {
      res.writeHead(200, { "content-length": statSync(model).size });
      createReadStream(model).pipe(res);
    } else if (req.url === "/to-loopback") {
      res.writeHead(302, { location: modelUrl() }).end();
    } else {
      res.writeHead(403, { "content-type": "text/plain" }).end("secret-internal-body");
    }
  });
  allowedUrl = await listen(allowed, "127.0.0.2");
  const closed = createServer();
  await listen(closed, "127.0.0.1");
  closedPort = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r));

  gw = await startGateway();
  a = await modelAgent("downloads-a");
  // Agent b starts with two unfinished downloads left from before: one untouched for 8 days, one fresh.
  b = await modelAgent("downloads-b", async (store) => {
    const downloads = join(store, "downloads");
    await mkdir(downloads, { recursive: true });
    for (const f of [oldPartial, freshPartial]) {
      await writeFile(join(downloads, `${f}.partial`), Buffer.alloc(1024));
      await writeFile(
        join(downloads, `${f}.partial.json`),
        JSON.stringify({ url: `${oddUrl}/${f}`, ranges: true }),
      );
    }
    const old = (Date.now() - 8 * 24 * 3600 * 1000) / 1000;
    utimesSync(join(downloads, `${oldPartial}.partial`), old, old);
  });
}, 120_000);

afterAll(async () => {
  await a?.proc.proc.stop();
  await b?.proc.proc.stop();
  await gw?.proc.stop();
  await python?.stop();
  odd?.close();
  allowed?.close();
});

describe("model downloads on real agents", () => {
  it("lives on when python3 -m http.server ends the body and closes while the agent reads slowly (undici #5360)", async () => {
    const pid = a.proc.proc.child.pid!;
    for (let round = 0; round < 3; round++) {
      let answered = false;
      const pulled = a
        .control("POST", "/inference/pull", { model: `slow-${round}`, source: modelUrl() })
        .finally(() => {
          answered = true;
        });
      let partial: string | undefined;
      const left = () => {
        partial ??= partials(a)
          .map((f) => join(a.store, "downloads", f))
          .find((f) => readFileSync(`${f}.json`, "utf8").includes(modelUrl()));
        return TEST_MODEL.bytes - (partial ? (statSync(partial, { throwIfNoEntry: false })?.size ?? 0) : 0);
      };
      await waitFor(() => answered || left() <= 8 * MiB, {
        intervalMs: 1,
        timeoutMs: 60_000,
        what: "the download's end",
      });
      await stallNearTheEnd(pid, () => answered);
      expect(await pulled).toMatchObject({ status: 201, body: { sha256: TEST_MODEL.sha256 } });
      expect(alive(a)).toBe(true);
    }
  }, 120_000);

  it("survives python3 -m http.server closing after the body, and answers non-streamed pulls by two agents at once", async () => {
    // No sha256 given: each pull downloads the file again rather than finding its bytes in the store.
    for (const round of ["one", "two", "three"]) {
      const pulls = await Promise.all(
        [a, b].map((agent) =>
          agent.control("POST", "/inference/pull", { model: `smol-${round}`, source: modelUrl() }),
        ),
      );
      for (const pull of pulls) {
        expect(pull).toMatchObject({
          status: 201,
          body: { name: `smol-${round}`, sha256: TEST_MODEL.sha256 },
        });
      }
    }
    expect(alive(a) && alive(b)).toBe(true);
  }, 240_000);

  it("never lets one owner's pull or start take another owner's model name, whatever its case", async () => {
    const trusted = { source: modelUrl(), sha256: TEST_MODEL.sha256, source_trusted: true };
    expect(
      await a.control("POST", "/inference/pull", { model: "victim", owner: "ws-a", ...trusted }),
    ).toMatchObject({ status: 201 });
    const refusals = [
      await a.control("POST", "/inference/pull", { model: "VICTIM", owner: "ws-b", ...trusted }),
      await a.control("POST", "/inference/pull", { model: "Victim", source: testModelPath() }),
      await a.control("POST", "/inference/pull", { model: "smol-one", owner: "ws-a", ...trusted }),
      await a.control("POST", "/inference/pull", { model: "victim", owner: "ws-b" }),
      await a.control("POST", "/inference/start", { model: "VICTIM", owner: "ws-b" }),
      await a.control("POST", "/inference/start", { model: "smol-one", owner: "ws-a" }),
    ];
    for (const r of refusals) {
      expect(r).toMatchObject({ status: 409, body: { error: { code: "model_owned" } } });
      const said = JSON.stringify(r.body);
      for (const secret of [pyUrl, TEST_MODEL.sha256, "blobs", a.store]) expect(said).not.toContain(secret);
    }
    const record = JSON.parse(readFileSync(join(a.store, "models", "victim.json"), "utf8"));
    expect(record).toMatchObject({ owner: "ws-a", source: modelUrl(), sha256: TEST_MODEL.sha256 });

    // A record an older agent wrote has no owner: it is the machine owner's, not up for grabs.
    const legacy = {
      ...JSON.parse(readFileSync(join(a.store, "models", "smol-one.json"), "utf8")),
      name: "legacy",
    };
    delete legacy.owner;
    writeFileSync(join(a.store, "models", "legacy.json"), JSON.stringify(legacy));
    expect(
      await a.control("POST", "/inference/pull", { model: "legacy", owner: "ws-b", ...trusted }),
    ).toMatchObject({ status: 409, body: { error: { code: "model_owned" } } });
    expect(
      await a.control("POST", "/inference/pull", { model: "legacy", source: testModelPath() }),
    ).toMatchObject({
      status: 201,
    });
  });

  it("reuses stored weights by sha256 only for their owner or their source, and says nothing of them to others", async () => {
    const trusted = { sha256: TEST_MODEL.sha256, source_trusted: true };
    expect(
      await a.control("POST", "/inference/pull", {
        model: "owned",
        owner: "ws-a",
        source: modelUrl(),
        ...trusted,
      }),
    ).toMatchObject({ status: 201 });
    // Sources the operator gave (trusted), so only the reuse rule stands between them and the bytes: a 404.
    const unreachable = `${oddUrl}/fake.gguf`;
    const thief = await a.control("POST", "/inference/pull", {
      model: "thief",
      owner: "ws-b",
      source: unreachable,
      sha256: TEST_MODEL.sha256,
      source_trusted: true,
    });
    expect(thief.status).toBe(502);
    const said = JSON.stringify(thief.body);
    for (const secret of ["blobs", a.store, modelUrl()]) expect(said).not.toContain(secret);
    expect(readdirSync(join(a.store, "models"))).not.toContain("thief.json");
    // Its owner may name the same bytes again without fetching them.
    expect(
      await a.control("POST", "/inference/pull", {
        model: "victim-again",
        owner: "ws-a",
        source: unreachable,
        sha256: TEST_MODEL.sha256,
        source_trusted: true,
      }),
    ).toMatchObject({ status: 201, body: { sha256: TEST_MODEL.sha256 } });
  });

  it("keeps a workspace's source off loopback, private and metadata addresses, with one answer for every refusal or failure", async () => {
    const denied = [
      modelUrl(),
      `http://localhost:${pyPort}/${basename(testModelPath())}`,
      `http://[::1]:${pyPort}/${basename(testModelPath())}`,
      `http://127.0.0.1:${closedPort}/x.gguf`,
      "http://169.254.169.254/latest/meta-data/",
      "http://10.255.255.1/x.gguf",
      `${allowedUrl}/to-loopback`,
      `${allowedUrl}/fails`,
    ];
    const messages = new Set<string>();
    for (const source of denied) {
      const r = await a.control("POST", "/inference/pull", { model: "probe", owner: "ws-c", source });
      expect(r, source).toMatchObject({ status: 502, body: { error: { code: "source_unreachable" } } });
      const message = String(r.body.error.message);
      for (const leak of ["403", "302", "secret", "ECONNREFUSED", "refused", "127.0.0.1:"])
        expect(message.replace(source, ""), source).not.toContain(leak);
      messages.add(message.replace(JSON.stringify(source), "SOURCE"));
    }
    expect([...messages]).toHaveLength(1);
    // The machine's own log keeps the reason the workspace is not told.
    expect(
      a.proc.proc
        .logs()
        .some((l) => l.code === "source_unreachable" && String(l.cause).includes("may not reach")),
    ).toBe(true);
    // Files on the machine are its owner's, whatever folders the owner allowed for their own pulls.
    for (const source of [testModelPath(), `file://${testModelPath()}`]) {
      expect(
        await a.control("POST", "/inference/pull", { model: "probe", owner: "ws-c", source }),
      ).toMatchObject({
        status: 403,
        body: { error: { code: "path_not_allowed" } },
      });
    }
    // What the machine's owner allowed (models.allow_private_sources) is reachable.
    expect(
      await a.control("POST", "/inference/pull", {
        model: "probe",
        owner: "ws-c",
        source: `${allowedUrl}/model.gguf`,
      }),
    ).toMatchObject({ status: 201, body: { sha256: TEST_MODEL.sha256 } });
    expect(alive(a)).toBe(true);
  });

  it("caps a download's size and keeps only unfinished downloads that can be resumed, within a quota", async () => {
    const endless = await a.control("POST", "/inference/pull", {
      model: "endless",
      source: `${oddUrl}/endless`,
    });
    expect(endless).toMatchObject({ status: 413, body: { error: { code: "download_too_large" } } });
    expect(partials(a)).toEqual([]);

    // Broken off, and the server cannot resume (no Range): nothing is kept.
    expect(
      (await a.control("POST", "/inference/pull", { model: "reset", source: `${oddUrl}/reset/1` })).status,
    ).toBe(502);
    expect(partials(a)).toEqual([]);

    // Resumable, so kept; pulling the same name from elsewhere drops it, and the quota drops the oldest.
    const pull = (model: string, id: number) =>
      a.control("POST", "/inference/pull", { model, source: `${oddUrl}/cut/${id}` });
    expect((await pull("cut", 1)).status).toBe(502);
    expect(partialUrls(a)).toEqual([`${oddUrl}/cut/1`]);
    expect((await pull("cut", 2)).status).toBe(502);
    expect(partialUrls(a)).toEqual([`${oddUrl}/cut/2`]);
    expect((await pull("other", 3)).status).toBe(502);
    expect(partialUrls(a)).toEqual([`${oddUrl}/cut/3`]);
  }, 120_000);

  it("removes unfinished downloads untouched for a week when the agent starts", async () => {
    await waitFor(() => !partials(b).includes(`${oldPartial}.partial`), { what: "the old partial to go" });
    expect(partials(b)).toContain(`${freshPartial}.partial`);
  });
});
