import type { AddressInfo } from "node:net";
import { DIALECTS } from "@beta9/test-utils";
import { launchBrowser, newContext } from "@beta9/test-utils/browser";
import { signInAtIdp, startTestIdp } from "@beta9/test-utils/oidc-provider";
import { describe, expect, it } from "vitest";
import { grant, groupsAt, parseRule } from "../src/auth/oidc/rules.ts";
import { harness } from "./harness.ts";

describe("single sign-on rules", () => {
  it("--oidc-rule reads GROUP=WORKSPACE:ROLE and refuses anything else with the form to write", () => {
    expect(parseRule("ml-team=ml:member")).toEqual({ group: "ml-team", workspace: "ml", role: "member" });
    // Group names from providers hold "/" and ":" (Keycloak paths, Entra ids); only the last = and : split.
    expect(parseRule("/org/a:b=default:admin")).toEqual({
      group: "/org/a:b",
      workspace: "default",
      role: "admin",
    });
    for (const bad of ["ml-team", "ml-team=ml", "=ml:member", "ml-team=ml:owner", "ml-team=:viewer"])
      expect(() => parseRule(bad), bad).toThrow(/GROUP=WORKSPACE:ROLE/);
  });

  it("groups are read at a dotted path, a single string counting as one group", () => {
    expect(groupsAt({ realm_access: { roles: ["a", "b", 3] } }, "realm_access.roles")).toEqual(["a", "b"]);
    expect(groupsAt({ groups: "solo" }, "groups")).toEqual(["solo"]);
    expect(groupsAt({ groups: ["x"] }, "realm_access.roles")).toEqual([]);
  });

  it("default deny; the first matching rule's workspace, with the strongest role there", () => {
    const rules = [
      { group: "ml-viewers", workspace: "ml", role: "viewer" as const },
      { group: "ops", workspace: "default", role: "admin" as const },
      { group: "ml-admins", workspace: "ml", role: "admin" as const },
    ];
    expect(grant(rules, ["marketing"])).toBeUndefined();
    expect(grant(rules, [])).toBeUndefined();
    expect(grant(rules, ["ml-viewers", "ml-admins"])).toMatchObject({ workspace: "ml", role: "admin" });
    expect(grant(rules, ["ops", "ml-viewers"])).toMatchObject({ workspace: "ml", role: "viewer" });
  });
});

describe("groups only in userinfo, under Keycloak's realm_access.roles", () => {
  it("a browser sign-in asks userinfo for them; an ID token that carries them is read at the same path", async () => {
    const idp = await startTestIdp({
      users: { kim: { name: "Kim Keycloak", groups: ["ml-team"] } },
      groupsIn: "userinfo",
      groupsClaim: "realm_access.roles",
    });
    const h = await harness(DIALECTS[0], {
      oidc: {
        issuer: idp.issuer,
        clientId: idp.clientId,
        clientSecret: idp.clientSecret,
        groupsClaim: "realm_access.roles",
        rules: [{ group: "ml-team", workspace: "ml", role: "viewer" }],
      },
    });
    const browser = await launchBrowser();
    try {
      expect((await h.call("POST", "/api/v1/workspaces", { body: { name: "ml" } })).status).toBe(201);
      await h.gw.app.listen({ host: "127.0.0.1", port: 0 });
      const base = `http://127.0.0.1:${(h.gw.app.server.address() as AddressInfo).port}`;
      const ctx = await newContext(browser);
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/auth/sso`, { waitUntil: "domcontentloaded" });
      await signInAtIdp(page, "kim");
      await page.waitForURL((u) => u.origin === base, { waitUntil: "commit" });
      expect(new URL(page.url()).pathname).toBe("/ui/");
      const cookie = (await ctx.cookies(base)).find((c) => c.name === "b9_session")?.value;
      expect(cookie).toBeDefined();
      const s = await h.call("GET", "/api/v1/auth/session", {
        key: null,
        headers: { cookie: `b9_session=${cookie}` },
      });
      expect(s.body.identity).toMatchObject({ kind: "sso", workspace: "ml", scopes: ["read"] });

      const token = idp.mint({ sub: "kim", realm_access: { roles: ["ml-team"] } });
      const r = await h.call("POST", "/api/v1/auth/token", { key: null, body: { id_token: token } });
      expect(r.status).toBe(200);
      expect(r.body.identity.scopes).toEqual(["read"]);
    } finally {
      await browser.close();
      await h.gw.close();
      await idp.stop();
    }
  }, 120_000);
});
