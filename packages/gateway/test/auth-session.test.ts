import { DIALECTS, makeCertificates, waitFor } from "@beta9/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, harness } from "./harness.ts";

/** The session cookie a login's answer set, and the Set-Cookie header itself. */
async function login(h: Harness, apiKey: string) {
  const res = await h.gw.app.inject({
    method: "POST",
    url: "/api/v1/auth/session",
    headers: { "content-type": "application/json" },
    payload: JSON.stringify({ api_key: apiKey }),
  });
  const setCookie = String(res.headers["set-cookie"] ?? "");
  const cookie = /^b9_session=([^;]*)/.exec(setCookie)?.[1] ?? "";
  return { status: res.statusCode, body: res.json(), setCookie, cookie };
}

/** A call authenticated by the cookie alone, as a browser sends it. */
function withCookie(cookie: string, csrf?: string) {
  return {
    key: null,
    headers: { cookie: `theme=dark; b9_session=${cookie}`, ...(csrf ? { "x-csrf-token": csrf } : {}) },
  };
}

async function createKey(h: Harness, name: string, scopes: string[]): Promise<{ id: string; key: string }> {
  const r = await h.call("POST", "/api/v1/keys", { body: { name, scopes } });
  expect(r.status).toBe(201);
  return r.body;
}

for (const dialect of DIALECTS) {
  describe(`dashboard sessions on ${dialect.name}`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await harness(dialect);
    });
    afterAll(async () => {
      await h?.gw.close();
    });

    it("without single sign-on the login page is told so", async () => {
      const r = await h.call("GET", "/api/v1/auth/config", { key: null });
      expect(r).toEqual({ status: 200, body: { sso: false, issuer: null } });
    });

    it("an API key opens a session of its own: an HttpOnly, SameSite=Strict cookie that is not the key", async () => {
      const s = await login(h, h.admin);
      expect(s.status).toBe(200);
      expect(s.body.identity).toEqual({
        kind: "key",
        name: "admin",
        workspace: "default",
        scopes: ["admin"],
        operator: true,
      });
      expect(s.body.csrf_token).toMatch(/^[\w-]{20,}$/);
      const hours = (Date.parse(s.body.expires_at) - Date.now()) / 3_600_000;
      expect(hours).toBeGreaterThan(11.9);
      expect(hours).toBeLessThanOrEqual(12);
      expect(s.setCookie).toMatch(/HttpOnly/);
      expect(s.setCookie).toMatch(/SameSite=Strict/);
      expect(s.setCookie).toMatch(/Path=\//);
      // Plain HTTP here: a Secure cookie would never come back.
      expect(s.setCookie).not.toMatch(/Secure/);
      expect(s.cookie).toMatch(/^b9s_/);
      expect(s.cookie).not.toContain(h.admin);

      const again = await h.call("GET", "/api/v1/auth/session", withCookie(s.cookie));
      expect(again.status).toBe(200);
      expect(again.body).toEqual(s.body);
    });

    it("the cookie works wherever a key does, and sessions never show among the keys", async () => {
      const s = await login(h, h.admin);
      const keys = await h.call("GET", "/api/v1/keys", withCookie(s.cookie));
      expect(keys.status).toBe(200);
      expect(keys.body.keys.length).toBeGreaterThan(0);
      expect(keys.body.keys.every((k: { id: string }) => k.id.startsWith("key_"))).toBe(true);
      expect((await h.call("GET", "/v1/models", withCookie(s.cookie))).status).toBe(200);
      expect((await h.call("GET", "/api/tags", withCookie(s.cookie))).status).toBe(200);
    });

    it("a change sent with the cookie needs the session's CSRF token; a bearer key needs none", async () => {
      const s = await login(h, h.admin);
      const body = { name: "from-the-dashboard", scopes: ["read"] };
      const none = await h.call("POST", "/api/v1/keys", { body, ...withCookie(s.cookie) });
      expect(none.status).toBe(403);
      expect(none.body.error.code).toBe("csrf");
      expect(none.body.error.message).toMatch(/x-csrf-token/);
      const other = await login(h, h.admin);
      const wrong = await h.call("POST", "/api/v1/keys", {
        body,
        ...withCookie(s.cookie, other.body.csrf_token),
      });
      expect(wrong.status).toBe(403);
      expect(wrong.body.error.code).toBe("csrf");
      const list = await h.call("GET", "/api/v1/keys");
      expect(list.body.keys.some((k: { name: string }) => k.name === "from-the-dashboard")).toBe(false);

      const right = await h.call("POST", "/api/v1/keys", {
        body,
        ...withCookie(s.cookie, s.body.csrf_token),
      });
      expect(right.status).toBe(201);
      expect((await h.call("POST", "/api/v1/keys", { body: { ...body, name: "by-bearer" } })).status).toBe(
        201,
      );
    });

    it("a wrong or revoked key opens nothing", async () => {
      const forged = await login(h, "b9_notarealkeyatallnotarealkeyatall");
      expect(forged.status).toBe(401);
      expect(forged.body.error.code).toBe("api_key_invalid");
      expect(forged.setCookie).toBe("");
      const k = await createKey(h, "short-lived", ["read"]);
      expect((await h.call("DELETE", `/api/v1/keys/${k.id}`)).status).toBeLessThan(300);
      const revoked = await login(h, k.key);
      expect(revoked.status).toBe(401);
      expect(revoked.body.error.code).toBe("api_key_revoked");
      // A session's own secret is no key to open another with.
      const s = await login(h, h.admin);
      expect((await login(h, s.cookie)).status).toBe(401);
    });

    it("forged cookies are refused, and so is an API key put in the cookie", async () => {
      for (const cookie of ["b9s_forgedforgedforgedforgedforgedforged", h.admin, "garbage"]) {
        const r = await h.call("GET", "/api/v1/keys", withCookie(cookie));
        expect(r.status).toBe(401);
        expect(r.body.error.code).toBe("session_expired");
      }
      const none = await h.call("GET", "/api/v1/auth/session", { key: null });
      expect(none.status).toBe(401);
      expect(none.body.error.code).toBe("unauthorized");
    });

    it("a session acts with its key's scopes: a read key's session cannot create keys", async () => {
      const k = await createKey(h, "reader", ["read"]);
      const s = await login(h, k.key);
      expect(s.body.identity.scopes).toEqual(["read"]);
      expect(s.body.identity.operator).toBe(true);
      const r = await h.call("POST", "/api/v1/keys", {
        body: { name: "escalate", scopes: ["admin"] },
        ...withCookie(s.cookie, s.body.csrf_token),
      });
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe("scope_missing");
    });

    it("logout ends the session on the server: the cookie replayed afterwards is refused", async () => {
      const s = await login(h, h.admin);
      // Logging out with the cookie takes the CSRF token too (no other site logs you out).
      expect((await h.call("DELETE", "/api/v1/auth/session", withCookie(s.cookie))).status).toBe(403);
      const out = await h.gw.app.inject({
        method: "DELETE",
        url: "/api/v1/auth/session",
        headers: { cookie: `b9_session=${s.cookie}`, "x-csrf-token": s.body.csrf_token },
      });
      expect(out.statusCode).toBe(204);
      expect(String(out.headers["set-cookie"])).toMatch(/^b9_session=;.*Max-Age=0/);
      const replay = await h.call("GET", "/api/v1/auth/session", withCookie(s.cookie));
      expect(replay.status).toBe(401);
      expect(replay.body.error.code).toBe("unauthorized");
      expect(replay.body.error.message).toMatch(/sign in again/);
      expect((await h.call("GET", "/api/v1/keys", withCookie(s.cookie))).status).toBe(401);
    });

    it("revoking a key ends the sessions opened with it", async () => {
      const k = await createKey(h, "laptop", ["admin"]);
      const s = await login(h, k.key);
      expect((await h.call("GET", "/api/v1/keys", withCookie(s.cookie))).status).toBe(200);
      expect((await h.call("DELETE", `/api/v1/keys/${k.id}`)).status).toBeLessThan(300);
      const r = await h.call("GET", "/api/v1/keys", withCookie(s.cookie));
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe("session_expired");
    });

    it("logins are audited with the key that signed in, never the key itself", async () => {
      const k = await createKey(h, "audited", ["read"]);
      await login(h, k.key);
      await login(h, "b9_wrongwrongwrongwrongwrongwrongwrong");
      const events = await h.gw.store.audit.list({ limit: 10_000 });
      const opens = events.filter((e) => e.action === "session.open");
      expect(opens.some((e) => e.actor_type === "key" && e.actor_id === k.id && e.outcome === "ok")).toBe(
        true,
      );
      expect(opens.some((e) => e.actor_type === "anonymous" && e.outcome === "refused")).toBe(true);
      expect(JSON.stringify(events)).not.toContain(k.key);
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`session expiry on ${dialect.name}`, () => {
    it("a session ends at its time: the cookie is refused afterwards", async () => {
      const h = await harness(dialect, { sessionTtlMs: 1_500 });
      try {
        const s = await login(h, h.admin);
        expect(s.status).toBe(200);
        expect((await h.call("GET", "/api/v1/auth/session", withCookie(s.cookie))).status).toBe(200);
        await waitFor(
          async () => (await h.call("GET", "/api/v1/keys", withCookie(s.cookie))).status !== 200,
          {
            timeoutMs: 30_000,
            what: "the session to expire",
          },
        );
        const r = await h.call("GET", "/api/v1/keys", withCookie(s.cookie));
        expect(r.status).toBe(401);
        expect(r.body.error.code).toBe("session_expired");
        // Ended sessions are forgotten by the store's pruning; keys stay.
        expect(await h.gw.store.keys.pruneSessions(Date.now())).toBeGreaterThanOrEqual(1);
        expect((await h.call("GET", "/api/v1/keys")).status).toBe(200);
        expect((await h.call("GET", "/api/v1/keys", withCookie(s.cookie))).status).toBe(401);
      } finally {
        await h.gw.close();
      }
    });
  });
}

describe("the session cookie over TLS", () => {
  it("is marked Secure, so no browser sends it over plain HTTP", async () => {
    const certs = makeCertificates();
    const h = await harness(DIALECTS[0], { tls: { certFile: certs.certFile, keyFile: certs.keyFile } });
    try {
      const s = await login(h, h.admin);
      expect(s.status).toBe(200);
      expect(s.setCookie).toMatch(/; Secure/);
    } finally {
      await h.gw.close();
    }
  });
});
