import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { BIN, type GatewayProc, Proc, startGateway, tempDir, waitFor } from "@beta9/test-utils";
import { launchBrowser, newContext, screenshot } from "@beta9/test-utils/browser";
import { signInAtIdp, startTestIdp, type TestIdp } from "@beta9/test-utils/oidc-provider";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface Saved {
  gateway: string;
  api_key?: string;
  sso?: { expires_at: string; refresh_token: string; refresh_expires_at: string };
}

describe("b9 login --sso (device flow against a real gateway and identity provider)", () => {
  let idp: TestIdp;
  let gw: GatewayProc;
  let browser: Browser;
  const config = join(tempDir("b9-cli-sso-"), "cli.json");
  // Only the settings under test: nothing from the environment of the run.
  const env = { BETA9_CLI_CONFIG: config, BETA9_GATEWAY: "", BETA9_API_KEY: "", BETA9_CA_FILE: "" };

  /** Runs the real b9 binary to its end. */
  async function b9(...args: string[]): Promise<{ code: number | null; out: string }> {
    const p = new Proc([BIN.cli, ...args], env);
    const code = await p.exited;
    return { code, out: p.lines.join("\n") };
  }
  const saved = () => JSON.parse(readFileSync(config, "utf8")) as Saved;

  beforeAll(async () => {
    idp = await startTestIdp({ users: { dana: { name: "Dana Developer", groups: ["ml-team"] } } });
    gw = await startGateway({
      args: [
        "--oidc-issuer",
        idp.issuer,
        "--oidc-client-id",
        idp.clientId,
        "--oidc-client-secret",
        idp.clientSecret,
        "--oidc-rule",
        "ml-team=ml:member",
        // Short, so every command renews the token first (renewed when it ends within a minute).
        "--session-ttl",
        "45s",
      ],
    });
    expect((await gw.api("POST", "/api/v1/workspaces", { name: "ml" })).status).toBe(201);
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.proc.stop();
    await idp?.stop();
  });

  it("signs in after the person approves in the browser, renews before commands, keeps a member a member, and logs out", async () => {
    const login = new Proc([BIN.cli, "login", "--sso", "--gateway", gw.url], env);
    let url = "";
    await waitFor(
      () => {
        url = /Open (\S+) in a browser/.exec(login.lines.join("\n"))?.[1] ?? "";
        return url !== "";
      },
      { what: "b9 login to show where to approve", proc: login },
    );
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    await page.goto(url, { waitUntil: "domcontentloaded" });
    await page.locator("button[autofocus]").click();
    await page.waitForURL((u) => u.pathname.startsWith("/interaction/"), { waitUntil: "domcontentloaded" });
    await signInAtIdp(page, "dana");
    await screenshot(page, "sso-device-done");
    await ctx.close();
    expect(await login.exited).toBe(0);
    expect(login.lines.join("\n")).toMatch(
      /Signed in to .* as Dana Developer \(workspace ml, scopes inference,jobs,read\)/,
    );

    const first = saved();
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(first.api_key).toMatch(/^b9s_/);
    expect(first.sso?.refresh_token).toMatch(/^b9r_/);

    // A member reads, and is renewed first: the saved token changed, the old one is refused.
    const list = await b9("model", "list");
    expect(list.code, list.out).toBe(0);
    const second = saved();
    expect(second.api_key).not.toBe(first.api_key);
    expect((await gw.api("GET", "/v1/models", undefined, first.api_key)).status).toBe(401);
    expect((await gw.api("GET", "/v1/models", undefined, second.api_key)).status).toBe(200);

    // ... and cannot do admin things.
    const admin = await b9("key", "create", "mine", "--scopes", "admin");
    expect(admin.code).not.toBe(0);
    expect(admin.out).toMatch(/lacks the 'admin' scope/);

    const out = await b9("logout");
    expect(out.code, out.out).toBe(0);
    expect(out.out).toMatch(/Signed out/);
    const after = saved();
    expect(after.api_key).toBeUndefined();
    expect(after.gateway).toBe(gw.url);
    const last = (await gw.api("GET", "/v1/models", undefined, second.api_key)).status;
    // The last token was renewed again by `key create`; whichever it was, none works now.
    expect(last).toBe(401);
    const next = await b9("model", "list");
    expect(next.code).not.toBe(0);
    expect(next.out).toMatch(/b9 login/);
  }, 180_000);
});
