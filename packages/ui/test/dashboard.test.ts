import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { MachineView } from "@beta9/protocol";
import {
  type GatewayProc,
  type ModelAgent,
  startGateway,
  startModelAgent,
  testModelPath,
  waitFor,
} from "@beta9/test-utils";
import { launchBrowser, newContext, screenshot } from "@beta9/test-utils/browser";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * The dashboard in a real Chromium against a real gateway, agent and test model: what a person
 * signing in sees and does. Built by scripts/setup (packages/ui/dist); the gateway serves it.
 */

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
/** Text a hostile agent or user puts where the dashboard shows it: it must stay text. */
const HTML = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>`;
const ANSI = "\u001b[31mred alert\u001b[0m";
const PAGES = ["/", "/machines", "/deployments", "/playground", "/keys", "/usage", "/jobs", "/audit"];

let gw: GatewayProc;
let worker: ModelAgent;
let browser: Browser;
/** CSP refusals and script errors seen on any page: a strict CSP must not break the dashboard. */
const problems: string[] = [];

beforeAll(async () => {
  gw = await startGateway();
  worker = await startModelAgent(gw, { name: "worker", env: { B9AGENT_JOB_RUNNER: "native" } });
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await worker?.agent.proc.stop();
  await gw?.proc.stop();
});

async function open(ctx: BrowserContext): Promise<Page> {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  return page;
}

/** Through the login page with an API key, as a person does; lands on `path`. */
async function signIn(ctx: BrowserContext, path = "/"): Promise<Page> {
  const page = await open(ctx);
  await page.goto(`${gw.url}/ui${path}`);
  await page.waitForURL(/\/ui\/login/);
  await page.getByLabel("API key").fill(gw.adminKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === `/ui${path === "/" ? "/" : path}`);
  return page;
}

async function machine(id: string): Promise<MachineView> {
  return (await gw.api<MachineView>("GET", `/api/v1/machines/${id}`)).body;
}

/** axe-core's serious and critical findings on the page as it is now (its source evaluated, not an inline script). */
async function axeFindings(page: Page): Promise<string[]> {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const axe = (
      globalThis as unknown as { axe: { run(): Promise<{ violations: Record<string, unknown>[] }> } }
    ).axe;
    return (await axe.run()).violations.map((v) => ({
      id: String(v.id),
      impact: String(v.impact),
      nodes: (v.nodes as { target: unknown }[]).map((n) => JSON.stringify(n.target)).slice(0, 3),
    }));
  });
  return found
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}) at ${v.nodes.join(" ")}`);
}

describe("the dashboard in a browser", () => {
  it("refuses a wrong key with the gateway's sentence, signs in with a right one, signs out, and returns only to its own pages", async () => {
    const ctx = await newContext(browser);
    const page = await open(ctx);
    const refused: string[] = [];
    page.on("response", (r) => {
      if (r.status() === 401) refused.push(new URL(r.url()).pathname);
    });
    await page.goto(`${gw.url}/ui/keys`);
    await page.waitForURL(/\/ui\/login\?return_to=%2Fui%2Fkeys/);
    await page.getByLabel("API key").waitFor();
    // Signed out, a page asks only whether there is a session (each refusal is a security event).
    expect(refused).toEqual(["/api/v1/auth/session"]);
    await page.getByLabel("API key").fill("b9_not_a_real_key");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").textContent()).toMatch(/key/i);
    await page.getByLabel("API key").fill(gw.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/ui\/keys$/);
    await page.getByRole("heading", { name: "Keys", level: 1 }).waitFor();
    // The key itself is never kept by the browser: only the gateway's session cookie.
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
    expect(stored).not.toContain(gw.adminKey);
    const cookie = (await ctx.cookies()).find((c) => c.name === "b9_session");
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.value).not.toContain(gw.adminKey);
    // The session gone (expired, revoked) while a page is open: the next call leads to the login page.
    await ctx.clearCookies();
    await page.getByRole("link", { name: "Machines" }).click();
    await page.waitForURL(/\/ui\/login\?return_to=%2Fui%2Fmachines/);
    await page.getByLabel("API key").fill(gw.adminKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Machines", level: 1 }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/ui\/login/);
    await page.goto(`${gw.url}/ui/machines`);
    await page.waitForURL(/\/ui\/login/);
    // A single sign-on that failed comes back with a code: the page says what it means.
    await page.goto(`${gw.url}/ui/login?error=sso_refused`);
    await expect.poll(() => page.getByRole("alert").textContent()).toContain("none of your groups");
    // A login link whose return address is another site (an open redirect) lands on the dashboard.
    for (const away of ["https://evil.example/", "//evil.example/ui/", "/ui/../../evil"]) {
      await page.goto(`${gw.url}/ui/login?return_to=${encodeURIComponent(away)}`);
      await page.getByLabel("API key").fill(gw.adminKey);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForURL(`${gw.url}/ui/`);
      await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForURL(/\/ui\/login/);
    }
    await ctx.close();
  });

  it("shows the machine READY, cordons it after a confirmation (the API says CORDONED) and uncordons it", async () => {
    const ctx = await newContext(browser);
    const page = await signIn(ctx, "/machines");
    const row = page.getByRole("row", { name: /worker/ });
    await expect.poll(() => row.textContent(), { timeout: 30_000 }).toContain("READY");
    await row.getByRole("link", { name: "worker" }).click();
    await page.getByRole("heading", { name: "worker", level: 1 }).waitFor();

    await page.getByRole("button", { name: "Cordon" }).click();
    const dialog = page.getByRole("dialog", { name: "Cordon" });
    await expect.poll(() => dialog.textContent()).toContain("Stop placing new work on worker");
    // Cancelling does nothing.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    expect((await machine(worker.machineId)).status).toBe("READY");

    await page.getByRole("button", { name: "Cordon" }).click();
    await dialog.getByRole("button", { name: "Cordon" }).click();
    await expect.poll(async () => (await machine(worker.machineId)).status).toBe("CORDONED");
    await expect.poll(() => page.locator("main").textContent()).toContain("CORDONED");
    await expect.poll(() => page.locator("main").textContent()).toContain("machine.cordon");

    await page.getByRole("button", { name: "Uncordon" }).click();
    await page.getByRole("dialog", { name: "Uncordon" }).getByRole("button", { name: "Uncordon" }).click();
    await expect.poll(async () => (await machine(worker.machineId)).status).toBe("READY");
    // Its changes, newest first, from the audit log.
    const changes = page.getByRole("region", { name: "Changes" }).getByRole("listitem");
    await expect.poll(() => changes.first().textContent()).toContain("machine.uncordon");
    expect(await changes.last().textContent()).toContain("machine.join");
    await ctx.close();
  });

  it("deploys the test model from the form, streams an answer in the playground with its tokens/s, and scales it", async () => {
    const ctx = await newContext(browser);
    const page = await signIn(ctx, "/deployments");
    const form = page.getByRole("form", { name: "Deploy a model" });
    await form.getByLabel("Name").fill("smollm2");
    await form.getByLabel("Source").fill(testModelPath());
    await form.getByRole("button", { name: "Deploy" }).click();
    await expect
      .poll(() => page.getByRole("region", { name: "Deployments" }).textContent())
      .toContain("smollm2");
    const listed = await gw.api<{ deployments: { name: string }[] }>("GET", "/api/v1/deployments");
    expect(listed.body.deployments.map((d) => d.name)).toEqual(["smollm2"]);

    await page.getByRole("link", { name: "Playground" }).click();
    await expect.poll(() => page.getByLabel("Model").inputValue()).toBe("smollm2");
    await page.getByLabel("Message").fill("Say hello in three words.");
    // Bounded and greedy: a sampled answer may ramble to the end of the context on a slow machine.
    await page.getByLabel("Max tokens").fill("24");
    await page.getByLabel("Temperature").fill("0");
    await page.getByRole("button", { name: "Send" }).click();
    // The answer streams in (the model loads first: scale from zero), then the speed is shown.
    await expect
      .poll(() => page.getByTestId("rate").textContent(), { timeout: 180_000, interval: 500 })
      .toMatch(/[\d.]+ tokens\/s/);
    await page.getByRole("button", { name: "Send" }).waitFor({ timeout: 180_000 });
    const answer = await page.locator(".turn.assistant p").last().textContent();
    expect(answer?.trim().length).toBeGreaterThan(0);
    // The engine's count of the answer's tokens, within the cap set above.
    const counted = Number((await page.getByTestId("rate").textContent())?.match(/· (\d+) tokens/)?.[1]);
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBeLessThanOrEqual(24);
    // The replica it placed, and why, on the deployments page.
    await page.getByRole("link", { name: "Deployments" }).click();
    const replicas = page.getByRole("region", { name: "Replicas" }).last();
    await expect.poll(() => replicas.textContent()).toContain("worker");
    expect(await replicas.textContent()).toMatch(/smollm2\s*worker/);
    // Scaled in its row: made again with the new counts, as the API then says.
    await page.getByLabel("Max", { exact: true }).fill("2");
    await page.getByRole("button", { name: "Scale smollm2" }).click();
    await page.getByRole("dialog", { name: "Scale smollm2" }).getByRole("button", { name: "Scale" }).click();
    await expect
      .poll(
        async () =>
          (await gw.api<{ max_replicas: number }>("GET", "/api/v1/deployments/smollm2")).body.max_replicas,
      )
      .toBe(2);
    await ctx.close();
  }, 300_000);

  it("creates a key whose secret is shown once, changes its limit, and revokes it after a confirmation", async () => {
    const ctx = await newContext(browser);
    const page = await signIn(ctx, "/keys");
    const form = page.getByRole("form", { name: "Create a key" });
    await form.getByLabel("Name", { exact: true }).fill("laptop");
    await form.getByLabel("Requests per minute").fill("60");
    await form.getByRole("button", { name: "Create key" }).click();
    const secret = (await page.getByTestId("new-key").textContent()) ?? "";
    expect(secret).toMatch(/^b9_/);
    // The secret works (a real call with it), and the list shows only its prefix.
    const models = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } });
    expect(models.status).toBe(200);
    await page.getByRole("button", { name: "Done" }).click();
    await page.reload();
    await page.getByRole("cell", { name: "laptop", exact: true }).waitFor();
    expect(await page.content()).not.toContain(secret);

    // Its limit changed in the dialog, as the API then says.
    await page.getByRole("button", { name: "Limits of laptop" }).click();
    const limits = page.getByRole("dialog", { name: "Limits of laptop" });
    await limits.getByLabel("Requests per minute").fill("120");
    await limits.getByRole("button", { name: "Save" }).click();
    await expect
      .poll(async () => {
        const list = await gw.api<{ keys: { name: string; rpm_limit: number | null }[] }>(
          "GET",
          "/api/v1/keys",
        );
        return list.body.keys.find((k) => k.name === "laptop")?.rpm_limit;
      })
      .toBe(120);

    await page.getByRole("button", { name: "Revoke laptop" }).click();
    await page.getByRole("dialog", { name: "Revoke laptop" }).getByRole("button", { name: "Revoke" }).click();
    await expect
      .poll(
        async () =>
          (await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${secret}` } })).status,
      )
      .toBe(401);
    await expect.poll(() => page.getByRole("row", { name: /laptop/ }).textContent()).toContain("revoked");
    await ctx.close();
  });

  it("cancels a running job after a confirmation, and the API says CANCELLED", async () => {
    const job = await gw.api<{ id: string }>("POST", "/api/v1/jobs", { command: ["sleep", "600"] });
    expect(job.status).toBe(201);
    const ctx = await newContext(browser);
    const page = await signIn(ctx, "/jobs");
    await page.getByRole("link", { name: job.body.id }).click();
    await expect.poll(() => page.locator("main").textContent(), { timeout: 30_000 }).toContain("RUNNING");
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page
      .getByRole("dialog", { name: "Cancel job" })
      .getByRole("button", { name: "Cancel job" })
      .click();
    await expect
      .poll(async () => (await gw.api<{ state: string }>("GET", `/api/v1/jobs/${job.body.id}`)).body.state, {
        timeout: 30_000,
      })
      .toBe("CANCELLED");
    await expect.poll(() => page.locator("main").textContent()).toContain("CANCELLED");
    await ctx.close();
  }, 90_000);

  it("shows hostile names, sources and log lines from agents and users as text, never as markup", async () => {
    // A lying agent (the fork's register/keepalive protocol, a real HTTP client) names itself and its models with markup.
    const { token } = (await gw.api<{ token: string }>("POST", "/api/v1/tokens", { pool: "external" })).body;
    const fork = (path: string, body: unknown) =>
      fetch(`${gw.url}/api/v1/machine/${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const reg = await fork("register", {
      machine_id: "hostile1",
      hostname: `${HTML} ${ANSI}`,
      pool_name: "external",
    });
    expect(reg.status).toBe(200);
    const alive = await fork("keepalive", {
      machine_id: "hostile1",
      agent_version: ANSI,
      inference: { status: "running", models: [`${HTML}:latest`] },
    });
    expect(alive.status).toBe(200);
    // A user's deployment source, and a job whose output is markup and terminal colours.
    expect(
      (
        await gw.api("POST", "/api/v1/deployments", {
          name: "hostile-source",
          source: `https://x.test/${HTML}`,
        })
      ).status,
    ).toBe(201);
    const job = await gw.api<{ id: string }>("POST", "/api/v1/jobs", {
      command: [
        "sh",
        "-c",
        'printf "%s\\n%s\\n" "$0" "$1"; printf 42 > "$B9_OUTPUT_DIR/result.txt"',
        HTML,
        ANSI,
      ],
    });
    expect(job.status).toBe(201);

    const ctx = await newContext(browser);
    const page = await signIn(ctx, "/machines");
    // Control characters in caret notation, as `cat -v` shows them.
    const shown = (text: string) => text.replaceAll("\u001b", "^[");
    await expect.poll(() => page.locator("main").textContent()).toContain(HTML);
    expect(await page.locator("main").textContent()).toContain(shown(ANSI));
    await page.goto(`${gw.url}/ui/machines/hostile1`);
    await expect.poll(() => page.locator("main").textContent()).toContain(`${HTML}:latest`);
    expect(await page.locator("main").textContent()).toContain(shown(ANSI));
    await page.goto(`${gw.url}/ui/deployments`);
    await expect.poll(() => page.locator("main").textContent()).toContain(`https://x.test/${HTML}`);
    await page.goto(`${gw.url}/ui/jobs/${job.body.id}`);
    await expect.poll(() => page.getByTestId("job-logs").textContent(), { timeout: 60_000 }).toContain(HTML);
    expect(await page.getByTestId("job-logs").textContent()).toContain(shown(ANSI));
    // Its output file, downloaded with the session cookie through the public API.
    const output = page.getByRole("link", { name: "result.txt" });
    await output.waitFor({ timeout: 30_000 });
    const href = await output.getAttribute("href");
    expect(await page.evaluate((url) => fetch(url!).then((r) => r.text()), href)).toBe("42");
    await screenshot(page, "dashboard-hostile-job-laptop");
    // Nothing of it became an element or ran.
    for (const path of ["/machines", "/machines/hostile1", "/deployments", `/jobs/${job.body.id}`]) {
      await page.goto(`${gw.url}/ui${path}`);
      await page.locator("main h1").waitFor();
      await expect.poll(() => page.locator("main").textContent()).toContain("x onerror");
      expect(await page.locator("main img, main script").count(), path).toBe(0);
      expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned), path).toBeUndefined();
    }
    await ctx.close();
  }, 120_000);

  it("every page on a laptop and a phone: no serious accessibility finding, no CSP refusal; screenshots kept", async () => {
    for (const phone of [false, true]) {
      const ctx = await newContext(browser, { phone });
      const page = await signIn(ctx);
      for (const path of PAGES) {
        await page.goto(`${gw.url}/ui${path}`);
        await page.locator("main h1").waitFor();
        // Live data has arrived (or its error): the page is as a person sees it.
        await waitFor(async () => (await page.locator("[aria-busy=true]").count()) === 0, {
          timeoutMs: 30_000,
        });
        expect(await axeFindings(page), `${path} (${phone ? "phone" : "laptop"})`).toEqual([]);
        const name = path === "/" ? "overview" : path.slice(1);
        await screenshot(page, `dashboard-${name}-${phone ? "phone" : "laptop"}`);
      }
      await page.goto(`${gw.url}/ui/machines/${worker.machineId}`);
      await page.getByRole("heading", { name: "worker", level: 1 }).waitFor();
      expect(await axeFindings(page)).toEqual([]);
      await screenshot(page, `dashboard-machine-${phone ? "phone" : "laptop"}`);
      await ctx.close();
    }
    const login = await open(await newContext(browser));
    await login.goto(`${gw.url}/ui/login`);
    await login.getByLabel("API key").waitFor();
    expect(await axeFindings(login)).toEqual([]);
    await screenshot(login, "dashboard-login-laptop");
    expect(problems).toEqual([]);
  }, 180_000);
});
