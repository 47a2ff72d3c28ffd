import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { tempDir } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { b9 } from "./harness.ts";

/*
 * b9 job outputs --download against a gateway that lies (a real HTTP server answering the job API's
 * routes): bytes that differ from the listed sha256, and a name that leads out of the folder, are
 * never kept. (Downloads from the real gateway: job-run.e2e.test.ts.)
 */
const ID = "job_00000000000000aa";
const LISTED = Buffer.from("the real result\n");
const SENT = Buffer.from("a forged result\n");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let server: Server;
let env: Record<string, string>;
let outputs: Array<{ name: string; sha256: string; size: number }>;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === `/api/v1/jobs/${ID}/outputs`) {
      res.setHeader("content-type", "application/json");
      return res.end(JSON.stringify({ outputs }));
    }
    if (req.url?.startsWith(`/api/v1/jobs/${ID}/outputs/`)) {
      res.setHeader("content-type", "application/octet-stream");
      return res.end(SENT);
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ error: { code: "not_found", message: "no such route" } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  env = {
    BETA9_GATEWAY: `http://127.0.0.1:${port}`,
    BETA9_API_KEY: "b9_test",
    BETA9_CLI_CONFIG: "/nonexistent/b9/cli.json",
  };
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("b9 job outputs --download from a gateway that lies", () => {
  it("keeps nothing whose bytes differ from the listed sha256, and says so", async () => {
    outputs = [{ name: "result.txt", sha256: sha256(LISTED), size: LISTED.length }];
    const dir = tempDir("b9-cli-outputs-");
    const r = await b9(env, "job", "outputs", ID, "--download", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: output result.txt of job ${ID} arrived as 16 B with sha256 ${sha256(SENT)}, not the 16 B with sha256 ${sha256(LISTED)} the gateway listed; it was not kept`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a name that leads outside the folder", async () => {
    outputs = [{ name: "../escaped.txt", sha256: sha256(SENT), size: SENT.length }];
    const parent = tempDir("b9-cli-outputs-");
    const dir = join(parent, "into");
    const r = await b9(env, "job", "outputs", ID, "--download", dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: the output name "../escaped.txt" leads outside');
    expect(existsSync(join(parent, "escaped.txt"))).toBe(false);
  });
});
