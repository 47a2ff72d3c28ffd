import type { AddressInfo } from "node:net";
import { DIALECTS, waitFor } from "@beta9/test-utils";
import { launchBrowser, newContext, screenshot } from "@beta9/test-utils/browser";
import { signInAtIdp, startTestIdp, type TestIdp } from "@beta9/test-utils/oidc-provider";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { safeReturnTo } from "../src/routes/auth/sso.ts";
import { type Harness, harness } from "./harness.ts";

const users = {
  alice: { name: "Alice Member", groups: ["ml-team"] },
  olga: { name: "Olga Operator", groups: ["pool-admins", "ml-team"] },
  eve: { name: "Eve Outsider", groups: ["marketing"] },
  carl: { name: "Carl Commandline", groups: ["ml-team"] },
};

/** A call with the dashboard's cookie (and its CSRF token for changes), as the browser sends it. */
function asBrowser(cookie: string, csrf?: string) {
  return {
    key: null,
    headers: { cookie: `b9_session=${cookie}`, ...(csrf ? { "x-csrf-token": csrf } : {}) },
  };
}

describe("single sign-on for the dashboard and the CLI (a real oidc-provider, a real browser)", () => {
  let idp: TestIdp;
  let h: Harness;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    idp = await startTestIdp({ users });
    h = await harness(DIALECTS[0], {
      oidc: {
        issuer: idp.issuer,
        clientId: idp.clientId,
        clientSecret: idp.clientSecret,
        groupsClaim: "groups",
        rules: [
          { group: "pool-admins", workspace: "default", role: "admin" },
          { group: "ml-team", workspace: "ml", role: "member" },
        ],
      },
    });
    expect((await h.call("POST", "/api/v1/workspaces", { body: { name: "ml" } })).status).toBe(201);
    await h.gw.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(h.gw.app.server.address() as AddressInfo).port}`;
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await h?.gw.close();
    await idp?.stop();
  });

  /** Signs `login` in through the dashboard's SSO button; the page ends where the gateway sent it. */
  async function dashboardLogin(
    login: string,
    returnTo = "/ui/deployments",
  ): Promise<{ page: Page; cookie?: string }> {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    await page.goto(`${base}/ui/auth/sso?return_to=${encodeURIComponent(returnTo)}`, {
      waitUntil: "domcontentloaded",
    });
    expect(page.url().startsWith(idp.issuer)).toBe(true);
    await screenshot(page, "sso-provider-login");
    await signInAtIdp(page, login);
    await page.waitForURL((u) => u.origin === base, { waitUntil: "commit" });
    const cookie = (await ctx.cookies(base)).find((c) => c.name === "b9_session");
    if (cookie) {
      expect(cookie.httpOnly).toBe(true);
      expect(cookie.sameSite).toBe("Strict");
    }
    return { page, cookie: cookie?.value };
  }

  it("the login page is told single sign-on is on", async () => {
    const r = await h.call("GET", "/api/v1/auth/config", { key: null });
    expect(r.body).toEqual({ sso: true, issuer: idp.issuer });
  });

  it("a member signs in through the provider's pages, lands where they were going, and cannot do admin things", async () => {
    const { page, cookie } = await dashboardLogin("alice", "/ui/deployments?x=1");
    expect(new URL(page.url()).pathname + new URL(page.url()).search).toBe("/ui/deployments?x=1");
    expect(cookie).toMatch(/^b9s_/);
    const s = await h.call("GET", "/api/v1/auth/session", asBrowser(cookie!));
    expect(s.status).toBe(200);
    expect(s.body.identity).toEqual({
      kind: "sso",
      name: "Alice Member",
      workspace: "ml",
      scopes: ["inference", "jobs", "read"],
      operator: false,
    });
    expect((await h.call("GET", "/api/v1/deployments", asBrowser(cookie!))).status).toBe(200);
    const admin = await h.call("POST", "/api/v1/keys", {
      body: { name: "mine", scopes: ["admin"] },
      ...asBrowser(cookie!, s.body.csrf_token),
    });
    expect(admin.status).toBe(403);
    expect(admin.body.error.code).toBe("scope_missing");
    // Audited with the identity (issuer, subject), never the email.
    const events = await h.gw.store.audit.list({ limit: 10_000 });
    const login = events.find((e) => e.action === "auth.login" && e.outcome === "ok");
    expect(login?.actor_type).toBe("identity");
    expect(login?.actor_id).toBe(`${idp.issuer}#alice`);
    await page.context().close();
  }, 120_000);

  it("an operator's group gives admin in the operator's workspace; logout ends the session", async () => {
    const { page, cookie } = await dashboardLogin("olga");
    const s = await h.call("GET", "/api/v1/auth/session", asBrowser(cookie!));
    expect(s.body.identity).toMatchObject({ workspace: "default", scopes: ["admin"], operator: true });
    const made = await h.call("POST", "/api/v1/keys", {
      body: { name: "made-by-olga", scopes: ["read"] },
      ...asBrowser(cookie!, s.body.csrf_token),
    });
    expect(made.status).toBe(201);
    const events = await h.gw.store.audit.list({ limit: 10_000 });
    const created = events.find(
      (e) => e.action === "key.create" && e.outcome === "ok" && e.resource === `key:${made.body.id}`,
    );
    expect(created?.actor_type).toBe("identity");
    expect(
      (await h.call("DELETE", "/api/v1/auth/session", asBrowser(cookie!, s.body.csrf_token))).status,
    ).toBe(204);
    expect((await h.call("GET", "/api/v1/auth/session", asBrowser(cookie!))).status).toBe(401);
    // API keys keep working beside single sign-on.
    expect((await h.call("GET", "/api/v1/keys")).status).toBe(200);
    await page.context().close();
  }, 120_000);

  it("a person whose groups map to nothing is refused, told why, and the refusal is audited", async () => {
    const { page, cookie } = await dashboardLogin("eve");
    const u = new URL(page.url());
    expect(u.pathname).toBe("/ui/login");
    expect(u.searchParams.get("error")).toBe("sso_refused");
    expect(cookie).toBeUndefined();
    const events = await h.gw.store.audit.list({ limit: 10_000 });
    expect(
      events.some(
        (e) => e.action === "auth.login" && e.outcome === "refused" && e.actor_id === `${idp.issuer}#eve`,
      ),
    ).toBe(true);
    await page.context().close();
  }, 120_000);

  it("a login's return URL never leads off the dashboard", async () => {
    const { page } = await dashboardLogin("alice", "https://evil.example/steal");
    expect(new URL(page.url()).origin).toBe(base);
    expect(new URL(page.url()).pathname).toBe("/ui/");
    await page.context().close();
    for (const bad of [
      "//evil.example/x",
      "/\\evil.example",
      "/ui/../api/v1/keys",
      "https://evil.example/ui/",
      "/login",
    ])
      expect(safeReturnTo(bad)).toBe("/ui/");
    expect(safeReturnTo("/ui/machines/m1?tab=logs#top")).toBe("/ui/machines/m1?tab=logs#top");
  }, 120_000);

  it("a replayed or forged callback is refused as an expired login", async () => {
    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    let callback = "";
    page.on("request", (r) => {
      if (r.url().includes("/ui/auth/callback")) callback = r.url();
    });
    await page.goto(`${base}/ui/auth/sso?return_to=/ui/`, { waitUntil: "domcontentloaded" });
    await signInAtIdp(page, "alice");
    await page.waitForURL((u) => u.origin === base && !u.pathname.startsWith("/ui/auth/"), {
      waitUntil: "commit",
    });
    expect(callback).toContain("code=");
    await page.goto(callback, { waitUntil: "commit" });
    expect(new URL(page.url()).searchParams.get("error")).toBe("sso_state");
    // Another browser with a stolen callback URL has no pending login to match it.
    const r = await h.gw.app.inject({
      method: "GET",
      url: new URL(callback).pathname + new URL(callback).search,
    });
    expect(r.statusCode).toBe(302);
    expect(r.headers.location).toBe("/ui/login?error=sso_state");
    await ctx.close();
  }, 120_000);

  it("the provider's tokens are checked: another audience, expired, a rotated-out key, another issuer — each refused with one sentence", async () => {
    const now = Math.floor(Date.now() / 1000);
    const good = idp.mint({ sub: "alice", groups: ["ml-team"], name: "Alice Member" });
    const ok = await h.call("POST", "/api/v1/auth/token", { key: null, body: { id_token: good } });
    expect(ok.status).toBe(200);
    expect(ok.body.identity).toMatchObject({ kind: "sso", workspace: "ml" });
    expect((await h.call("GET", "/v1/models", { key: ok.body.access_token })).status).toBe(200);

    const cases: [string, string, RegExp][] = [
      [
        "another audience",
        idp.mint({ sub: "alice", groups: ["ml-team"], aud: "another-app" }),
        /another application/,
      ],
      [
        "expired",
        idp.mint({ sub: "alice", groups: ["ml-team"], iat: now - 7200, exp: now - 3600 }),
        /expired/,
      ],
      [
        "rotated-out key",
        idp.mint({ sub: "alice", groups: ["ml-team"] }, { signer: "retired" }),
        /no longer publishes/,
      ],
      [
        "another issuer",
        idp.mint({ sub: "alice", groups: ["ml-team"], iss: "https://evil.example" }),
        /not issued by/,
      ],
      ["altered", `${good.slice(0, good.lastIndexOf(".") - 4)}AAAA${good.slice(good.lastIndexOf("."))}`, /./],
    ];
    for (const [what, token, sentence] of cases) {
      const r = await h.call("POST", "/api/v1/auth/token", { key: null, body: { id_token: token } });
      expect(r.status, what).toBe(401);
      expect(r.body.error.code, what).toBe("sso_token_invalid");
      expect(r.body.error.message, what).toMatch(sentence);
      expect(r.body.error.message.split(/[.;] /).length, what).toBeLessThanOrEqual(2);
    }
    const nobody = await h.call("POST", "/api/v1/auth/token", {
      key: null,
      body: { id_token: idp.mint({ sub: "eve", groups: ["marketing"] }) },
    });
    expect(nobody.status).toBe(403);
    expect(nobody.body.error.code).toBe("sso_refused");
  });

  it("a provider that is down is explained, not a crash", async () => {
    await idp.stop();
    try {
      const r = await h.call("POST", "/api/v1/auth/device", { key: null });
      expect(r.status).toBe(502);
      expect(r.body.error.code).toBe("sso_failed");
      expect(r.body.error.message).toContain(idp.issuer);
    } finally {
      await idp.start();
    }
    const again = await h.call("POST", "/api/v1/auth/device", { key: null });
    expect(again.status).toBe(200);
  });

  it("the CLI's device sign-in: approved in the browser, refreshed with the provider asked again, ended when the person leaves the group", async () => {
    const start = await h.call("POST", "/api/v1/auth/device", { key: null });
    expect(start.status).toBe(200);
    const { device_code, verification_uri_complete, interval } = start.body;
    const early = await h.call("POST", "/api/v1/auth/device/token", { key: null, body: { device_code } });
    expect(early.status).toBe(428);
    expect(early.body.error.code).toBe("authorization_pending");

    const ctx = await newContext(browser);
    const page = await ctx.newPage();
    await page.goto(verification_uri_complete, { waitUntil: "domcontentloaded" });
    await screenshot(page, "sso-device-confirm");
    await page.locator("button[autofocus]").click();
    await page.waitForURL((u) => u.pathname.startsWith("/interaction/"), { waitUntil: "domcontentloaded" });
    await signInAtIdp(page, "carl");
    await ctx.close();

    let tokens: Awaited<ReturnType<Harness["call"]>> = early;
    await waitFor(
      async () => {
        tokens = await h.call("POST", "/api/v1/auth/device/token", { key: null, body: { device_code } });
        return tokens.status !== 428 && tokens.status !== 429;
      },
      { timeoutMs: 60_000, intervalMs: interval * 1000, what: "the device sign-in to be approved" },
    );
    expect(tokens.status).toBe(200);
    expect(tokens.body.identity).toMatchObject({ kind: "sso", name: "Carl Commandline", workspace: "ml" });
    expect(tokens.body.access_token).toMatch(/^b9s_/);
    expect(tokens.body.refresh_token).toMatch(/^b9r_/);
    expect((await h.call("GET", "/v1/models", { key: tokens.body.access_token })).status).toBe(200);

    const renewed = await h.call("POST", "/api/v1/auth/refresh", {
      key: null,
      body: { refresh_token: tokens.body.refresh_token },
    });
    expect(renewed.status).toBe(200);
    expect(renewed.body.access_token).not.toBe(tokens.body.access_token);
    expect((await h.call("GET", "/v1/models", { key: renewed.body.access_token })).status).toBe(200);
    expect((await h.call("GET", "/v1/models", { key: tokens.body.access_token })).status).toBe(401);
    // A refresh token is used once: replayed, it is refused.
    const replay = await h.call("POST", "/api/v1/auth/refresh", {
      key: null,
      body: { refresh_token: tokens.body.refresh_token },
    });
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe("session_expired");

    // Carl leaves the group at the provider: the next refresh asks it, and refuses.
    users.carl.groups = ["marketing"];
    const refused = await h.call("POST", "/api/v1/auth/refresh", {
      key: null,
      body: { refresh_token: renewed.body.refresh_token },
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("sso_refused");
    expect((await h.call("GET", "/v1/models", { key: renewed.body.access_token })).status).toBe(401);
    const events = await h.gw.store.audit.list({ limit: 10_000 });
    expect(
      events.some(
        (e) => e.action === "auth.refresh" && e.outcome === "refused" && e.actor_id === `${idp.issuer}#carl`,
      ),
    ).toBe(true);
  }, 180_000);
});

describe("an identity provider that cannot be reached", () => {
  it("sends the browser back to the login page with sso_failed, and tells the CLI which provider failed", async () => {
    // Nothing listens on port 9 of loopback (discard): the provider is down from the gateway's start.
    const h = await harness(DIALECTS[0], {
      oidc: {
        issuer: "http://127.0.0.1:9",
        clientId: "beta9",
        clientSecret: "s",
        groupsClaim: "groups",
        rules: [{ group: "g", workspace: "default", role: "viewer" }],
      },
    });
    try {
      const r = await h.gw.app.inject({ method: "GET", url: "/ui/auth/sso?return_to=/ui/machines" });
      expect(r.statusCode).toBe(302);
      expect(r.headers.location).toBe("/ui/login?error=sso_failed");
      const device = await h.call("POST", "/api/v1/auth/device", { key: null });
      expect(device.status).toBe(502);
      expect(device.body.error).toEqual({
        code: "sso_failed",
        message: expect.stringContaining("identity provider (http://127.0.0.1:9) could not be reached"),
      });
      // API keys are not the provider's business: they work on.
      expect((await h.call("GET", "/api/v1/keys")).status).toBe(200);
    } finally {
      await h.gw.close();
    }
  });
});
