import { execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { BIN, type GatewayProc, startGateway, tempDir, waitFor, withGatewayDb } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);

/** The real b9 binary against a real gateway: list, follow, export and verify its audit log. */
describe("b9 audit against a real gateway", () => {
  let gw: GatewayProc;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    gw = await startGateway();
    env = {
      ...process.env,
      BETA9_GATEWAY: gw.url,
      BETA9_API_KEY: gw.adminKey,
      BETA9_CLI_CONFIG: `${tempDir()}/cli.json`,
    };
  });
  afterAll(async () => {
    await gw.proc.stop();
  });

  const b9 = async (...args: string[]) => {
    try {
      const r = await run(process.execPath, [BIN.cli, ...args], { env });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it("lists who did what, filters it, and follows new events as they are written", async () => {
    expect((await b9("pool", "create", "lab")).code).toBe(0);
    const token = JSON.parse((await b9("token", "create", "--pool", "lab", "--json")).stdout);
    const listed = await b9("audit", "list", "--json");
    expect(listed.code).toBe(0);
    const actions = JSON.parse(listed.stdout).events.map((e: { action: string }) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["pool.create", "token.create"]));
    const table = await b9("audit", "list", "--action", "token.create", "--since", "1h");
    expect(table.stdout).toContain(`token:${token.id}`);
    expect(table.stdout).not.toContain("pool:lab");
    expect(table.stdout).not.toContain(token.token);

    const follow = spawn(
      process.execPath,
      [BIN.cli, "audit", "list", "--follow", "--json", "--action", "pool.create"],
      {
        env,
      },
    );
    let out = "";
    follow.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    try {
      await waitFor(() => out.includes("pool:lab"), { what: "the existing event", timeoutMs: 60_000 });
      expect((await b9("pool", "create", "later")).code).toBe(0);
      await waitFor(() => out.includes("pool:later"), { what: "the new event, followed", timeoutMs: 60_000 });
    } finally {
      follow.kill("SIGINT");
    }
  });

  it("exports a file with no secret in it, and verify finds the log whole, then names an edited row", async () => {
    const file = join(tempDir(), "audit.jsonl");
    expect((await b9("audit", "export", "--format", "jsonl", "--output", file)).code).toBe(0);
    const text = readFileSync(file, "utf8");
    expect(text).toContain('"type":"public_key"');
    expect(text).not.toContain(gw.adminKey);
    // Offline: the file alone, with the key it carries or the one the operator kept.
    const offline = await b9("audit", "verify", "--file", file);
    expect(offline).toMatchObject({ code: 0 });
    expect(offline.stdout).toContain("intact");
    const lines = text.trim().split("\n");
    const edited = lines.map((l) =>
      l.includes('"seq":2,') && l.includes('"type":"event"')
        ? l.replace('"outcome":"ok"', '"outcome":"failed"')
        : l,
    );
    expect(edited).not.toEqual(lines);
    const forged = join(tempDir(), "forged.jsonl");
    writeFileSync(forged, `${edited.join("\n")}\n`);
    const caught = await b9("audit", "verify", "--file", forged);
    expect(caught.code).toBe(1);
    expect(caught.stderr).toMatch(/at sequence number 2/);
    const ok = await b9("audit", "verify");
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toContain("intact");

    // Behind the gateway's back: the trigger dropped and an event edited in its SQLite file.
    withGatewayDb(
      gw,
      (db) =>
        db.exec(
          "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET outcome = 'refused' WHERE seq = 2",
        ),
      { readOnly: false },
    );
    const broken = await b9("audit", "verify");
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/the audit log is broken: chain gw_[0-9a-f]+ at sequence number 2/);
    expect(broken.stdout).toContain("BROKEN at 2");
  });
});
