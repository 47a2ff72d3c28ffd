import { execFile } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { AiActReport } from "@beta9/sdk";
import {
  type GatewayProc,
  inferenceKey,
  type ModelAgent,
  runB9,
  startGateway,
  startModelAgent,
  tempDir,
  testModelPath,
  waitFor,
  withGatewayDb,
} from "@beta9/test-utils";
import OpenAI, { APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findChromium, printHtml } from "../src/commands/report/chromium.ts";

/*
 * `b9 report ai-act`: the real b9 binary → b9gateway → the facts a real agent recorded when it pulled
 * the test model for a deployment (in FR) and the usage rows of the answers the builtin engine gave.
 * Every answer carries the AI-generated marker, read with the openai client's raw response.
 */

const execFileP = promisify(execFile);
const MODEL = "smollm2-dep";

let gw: GatewayProc;
let worker: ModelAgent;
let env: NodeJS.ProcessEnv;
let client: OpenAI;
let inference: string;
const out = tempDir("b9-ai-act-");
const from = new Date(Date.now() - 3_600_000).toISOString();

const b9 = (args: string[]) => runB9(args, env);

async function report(
  q: string,
): Promise<{ status: number; body: AiActReport & { error?: { code: string; message: string } } }> {
  return gw.api("GET", `/api/v1/reports/ai-act?${q}`);
}

beforeAll(async () => {
  gw = await startGateway({ args: ["--heartbeat-interval", "1s"] });
  worker = await startModelAgent(gw, { name: "paris-1", country: "FR" });
  const dep = { name: MODEL, source: testModelPath(), min_replicas: 1, context_size: 1024 };
  expect((await gw.api("POST", "/api/v1/deployments", dep)).status).toBe(201);
  await waitFor(
    async () => {
      const res = await worker.control("GET", "/inference/status");
      const { models } = (await res.json()) as { models: { name: string; state: string }[] };
      return models.some((m) => m.name === MODEL && m.state === "ready");
    },
    { what: "the deployment's replica", timeoutMs: 120_000, proc: worker.agent.proc },
  );
  inference = await inferenceKey(gw);
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: inference, maxRetries: 0 });
  env = {
    ...process.env,
    BETA9_GATEWAY: gw.url,
    BETA9_API_KEY: gw.adminKey,
    BETA9_CLI_CONFIG: join(out, "cli.json"),
  };
}, 240_000);

afterAll(async () => {
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

const ask = {
  model: MODEL,
  messages: [{ role: "user" as const, content: "Name a colour." }],
  max_tokens: 8,
  temperature: 0,
};

describe("the AI-generated marker", () => {
  it("every answer carries x-beta9-ai-generated: true (whole, streamed, Ollama's); an error is not marked", async () => {
    const whole = await client.chat.completions.create(ask).withResponse();
    expect(whole.data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(whole.response.headers.get("x-beta9-ai-generated")).toBe("true");

    const streamed = await client.chat.completions.create({ ...ask, stream: true }).withResponse();
    expect(streamed.response.headers.get("x-beta9-ai-generated")).toBe("true");
    for await (const _ of streamed.data) {
      // drained: the answer ends
    }

    const ollama = await fetch(`${gw.url}/api/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${inference}`, "content-type": "application/json" },
      body: JSON.stringify({ ...ask, stream: false, options: { num_predict: 8 } }),
    });
    expect(ollama.status).toBe(200);
    expect(ollama.headers.get("x-beta9-ai-generated")).toBe("true");
    await ollama.text();

    const unknown = await client.chat.completions
      .create({ ...ask, model: "no-such-model" })
      .withResponse()
      .catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(APIError);
    expect((unknown as APIError).headers?.get("x-beta9-ai-generated")).toBeNull();
  }, 120_000);
});

describe("b9 report ai-act", () => {
  it("the inventory's sha256 is the test model file's, its licence Apache-2.0, its machine in FR; usage counts the requests made", async () => {
    const { stdout } = await execFileP("sha256sum", [testModelPath()]);
    const sha256 = stdout.split(/\s+/)[0];
    const res = await report(`workspace=default&from=${from}&to=${new Date().toISOString()}`);
    expect(res.status).toBe(200);
    expect(res.body.models).toHaveLength(1);
    const m = res.body.models[0]!;
    expect(m).toMatchObject({
      name: MODEL,
      sha256,
      source: testModelPath(),
      license: "Apache-2.0",
      license_source: "gguf",
      architecture: "llama",
      quantization: "Q4_1",
      context_length: 8192,
      countries: ["FR"],
      machines: [{ id: worker.machineId, name: "paris-1", country: "FR" }],
    });
    expect(m.parameter_count).toBeGreaterThan(100e6);
    expect(m.deployed_at).toMatch(/^\d{4}-/);
    // Three answers (whole, streamed, Ollama's); the unknown model's refusal is its own row.
    const usage = res.body.usage.find((u) => u.model === MODEL);
    expect(usage).toMatchObject({ requests: 3, error_rate: 0, refusal_rate: 0 });
    expect(usage!.completion_tokens).toBeGreaterThan(0);
    expect(res.body.usage.find((u) => u.model === "no-such-model")).toMatchObject({
      requests: 1,
      refusal_rate: 1,
    });
    expect(res.body.incidents).toContainEqual({
      kind: "failed_requests",
      cause: "model not found (404)",
      count: 1,
    });
    // The audit log's chains verify, with their checkpoints; the deployment's maker is the admin key.
    expect(res.body.audit).toMatchObject({ verified: true, ok: true });
    expect(res.body.audit.content).toMatch(
      /^Inference events keep metadata only .* no prompt or answer is kept/,
    );
    expect(res.body.audit.chains.length).toBeGreaterThan(0);
    expect(m.deployed_by).toMatch(/^key admin \(key_\w+\)$/);
    expect(res.body.transparency).toMatchObject({ header: "x-beta9-ai-generated", value: "true" });
    expect(res.body.sections.map((s) => s.id)).toEqual([
      "inventory",
      "usage",
      "incidents",
      "audit",
      "transparency",
      "not_covered",
    ]);
    expect(res.body.not_covered.join(" ")).toMatch(/not legal advice/);
  }, 60_000);

  it("prints Markdown, writes self-contained HTML and JSON, and a PDF when Chromium is installed", async () => {
    const md = await b9(["report", "ai-act", "--workspace", "default", "--from", "1h"]);
    expect(md.code).toBe(0);
    const { stdout } = await execFileP("sha256sum", [testModelPath()]);
    expect(md.stdout).toContain(`| sha256 | ${stdout.split(/\s+/)[0]} |`);
    expect(md.stdout).toContain("| Licence (SPDX) | Apache-2.0 (GGUF metadata) |");
    expect(md.stdout).toMatch(/Supports: Art\. 50\(2\)/);
    expect(md.stdout).toMatch(/not legal advice/);

    const htmlFile = join(out, "pack.html");
    const html = await b9([
      "report",
      "ai-act",
      "--workspace",
      "default",
      "--format",
      "html",
      "--output",
      htmlFile,
    ]);
    expect(html.code).toBe(0);
    const page = readFileSync(htmlFile, "utf8");
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toContain("<td>Apache-2.0 (GGUF metadata)</td>");
    // Self-contained: nothing to fetch.
    expect(page).not.toMatch(/<(script|link|img)\b|src=|href=/i);

    const json = await b9(["report", "ai-act", "--workspace", "default", "--format", "json"]);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as AiActReport).models[0]?.license).toBe("Apache-2.0");

    const pdfFile = join(out, "pack.pdf");
    const pdf = await b9([
      "report",
      "ai-act",
      "--workspace",
      "default",
      "--format",
      "pdf",
      "--output",
      pdfFile,
    ]);
    if (findChromium()) {
      expect(pdf).toMatchObject({ code: 0 });
      expect(readFileSync(pdfFile).subarray(0, 5).toString()).toBe("%PDF-");
      // A person looks at the page: the screenshot is kept (BETA9_REPORT_SHOTS) to be viewed.
      const shots = process.env.BETA9_REPORT_SHOTS ?? join(out, "shots");
      mkdirSync(shots, { recursive: true });
      await printHtml(page, join(shots, "ai-act.png"), "png");
      expect(readFileSync(join(shots, "ai-act.png")).subarray(1, 4).toString()).toBe("PNG");
    } else {
      expect(pdf.code).toBe(1);
      expect(pdf.stderr).toMatch(/headless Chromium, which is not installed/);
      expect(pdf.stderr).toMatch(/apt-get install chromium/);
    }
  }, 180_000);

  it("bad input: an unknown workspace, --from after --to, a period with nothing, a PDF with no file", async () => {
    const unknown = await report(`workspace=nope&from=${from}&to=${new Date().toISOString()}`);
    expect(unknown).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    expect(unknown.body.error?.message).toMatch(/no workspace named nope/);
    const cli = await b9(["report", "ai-act", "--workspace", "nope"]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/no workspace named nope/);

    const backwards = await report("workspace=default&from=2026-03-02&to=2026-03-01");
    expect(backwards).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
    expect(backwards.body.error?.message).toMatch(/`from` \(2026-03-02\) must be before `to` \(2026-03-01\)/);
    const cliBackwards = await b9([
      "report",
      "ai-act",
      "--workspace",
      "default",
      "--from",
      "2026-03-02",
      "--to",
      "2026-03-01",
    ]);
    expect(cliBackwards.code).not.toBe(0);
    expect(cliBackwards.stderr).toMatch(/--from .* must be before --to/);

    // Before anything was deployed: an empty pack that says so, not an error.
    const empty = await report("workspace=default&from=2020-01-01&to=2020-01-02");
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ models: [], usage: [], incidents: [] });
    const emptyMd = await b9([
      "report",
      "ai-act",
      "--workspace",
      "default",
      "--from",
      "2020-01-01",
      "--to",
      "2020-01-02",
    ]);
    expect(emptyMd.stdout).toMatch(/No model was deployed for this workspace by the end of the period\./);
    expect(emptyMd.stdout).toMatch(/No inference requests in the period\./);

    const noFile = await b9(["report", "ai-act", "--workspace", "default", "--format", "pdf"]);
    expect(noFile.code).not.toBe(0);
    expect(noFile.stderr).toMatch(/--output report\.pdf/);

    // Another workspace's pack is the operator's or that workspace's admin's to build.
    const other = await gw.api<{ key: string }>("POST", "/api/v1/keys", { name: "reader", scopes: ["read"] });
    const refused = await gw.api(
      "GET",
      `/api/v1/reports/ai-act?workspace=default&from=${from}&to=${new Date().toISOString()}`,
      undefined,
      other.body.key,
    );
    expect(refused.status).toBe(403);

    // A workspace's own admin builds its own pack (none of default's models in it), not the operator's.
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "team" })).status).toBe(201);
    const teamAdmin = await gw.api<{ key: string }>("POST", "/api/v1/keys", {
      name: "team-admin",
      scopes: ["admin"],
      workspace: "team",
    });
    const window = `from=${from}&to=${new Date().toISOString()}`;
    const own = await gw.api<AiActReport>(
      "GET",
      `/api/v1/reports/ai-act?workspace=team&${window}`,
      undefined,
      teamAdmin.body.key,
    );
    expect(own).toMatchObject({ status: 200, body: { workspace: "team", models: [], usage: [] } });
    const theirs = await gw.api(
      "GET",
      `/api/v1/reports/ai-act?workspace=default&${window}`,
      undefined,
      teamAdmin.body.key,
    );
    expect(theirs.status).toBe(403);

    // Those refusals are security events in the audit log (written in batches, stamped when written).
    const upToNow = () => `workspace=default&from=${from}&to=${new Date().toISOString()}`;
    await waitFor(
      async () =>
        (await report(upToNow())).body.incidents.some(
          (i) => i.kind === "security_event" && i.cause === "auth.forbidden (refused)",
        ),
      { what: "the forbidden attempt among the pack's incidents", timeoutMs: 30_000 },
    );
    expect((await report(upToNow())).body.incidents).toContainEqual({
      kind: "security_event",
      cause: "auth.forbidden (refused)",
      count: 1,
    });
  }, 90_000);
});

describe("an audit log edited behind the gateway's back", () => {
  it("the pack says the chain is broken and at which sequence number", async () => {
    // What someone with the database file could do: drop the guard and rewrite history.
    withGatewayDb(
      gw,
      (db) =>
        db.exec(
          "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET action = 'nothing.happened' WHERE seq = 2",
        ),
      { readOnly: false },
    );
    const res = await report(`workspace=default&from=${from}&to=${new Date().toISOString()}`);
    expect(res.body.audit).toMatchObject({ verified: true, ok: false });
    expect(res.body.audit.note).toMatch(/^BROKEN: chain \S+ at sequence 2 /);
    expect(res.body.audit.chains[0]?.first_broken_seq).toBe(2);
    const md = await b9(["report", "ai-act", "--workspace", "default", "--from", "1h"]);
    expect(md.stdout).toMatch(/Verification: BROKEN: chain \S+ at sequence 2/);
  }, 60_000);
});
