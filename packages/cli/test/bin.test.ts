import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { tempHome } from "./harness.ts";

const BIN = fileURLToPath(new URL("../bin/b9.js", import.meta.url));

/** The real executable, on the Node running the tests (the pinned Node 24). */
async function exec(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("bin/b9.js", () => {
  it("runs the program and exits 0", async () => {
    const r = await exec(["--version"], {});
    expect(r).toEqual({ code: 0, stdout: "0.1.0\n", stderr: "" });
  });

  it("exits 1 with a message and no stack trace on a user error", async () => {
    const home = tempHome();
    const r = await exec(["machine", "list"], { HOME: home, BETA9_CLI_CONFIG: `${home}/none.json` });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "error: no gateway configured\nrun b9 login --gateway URL --api-key KEY or set BETA9_GATEWAY and BETA9_API_KEY\n",
    );
  });
});
