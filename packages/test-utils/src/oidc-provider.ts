import { createSign, generateKeyPairSync, type JsonWebKey, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";
import type { Page } from "playwright-core";

/** A person of the test identity provider: logs in with any password, and belongs to `groups`. */
export interface TestUser {
  name: string;
  groups: string[];
}

export interface TestIdpOptions {
  /** login → person; the test may change a person's groups between logins and refreshes. */
  users: Record<string, TestUser>;
  clientId?: string;
  clientSecret?: string;
  /** Where the groups are: "id_token" (claim `groups`), or only in "userinfo" (many providers do so). */
  groupsIn?: "id_token" | "userinfo";
  /** The claim's path, e.g. "realm_access.roles" as Keycloak sends it (default "groups"). */
  groupsClaim?: string;
}

export interface TestIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  users: Record<string, TestUser>;
  /**
   * A JWT signed by the provider's current key (or by a key it published once and rotated out), with
   * the issuer, audience and times a test chooses: to show the gateway refuses what it must.
   */
  mint(claims: Record<string, unknown>, opts?: { signer?: "current" | "retired" }): string;
  /** Stop answering (the provider is down); `start` again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

type Jwk = JsonWebKey & { kid: string };

function rsaKey(): { privateJwk: Jwk } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    privateJwk: { ...privateKey.export({ format: "jwk" }), kid: randomUUID(), alg: "RS256", use: "sig" },
  };
}

/** Sets `value` at a dotted path ("realm_access.roles") of `into`. */
function setPath(into: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".");
  let at = into;
  for (const p of parts.slice(0, -1)) {
    at[p] = at[p] ?? {};
    at = at[p] as Record<string, unknown>;
  }
  at[parts[parts.length - 1] ?? path] = value;
}

/**
 * The real `oidc-provider` (panva) on 127.0.0.1, in this process: its own login and consent pages
 * (any password), authorization code with PKCE, the device flow (RFC 8628), refresh tokens, and a
 * key it rotated out (published before, no longer), so tests can sign tokens the gateway must refuse.
 */
export async function startTestIdp(opts: TestIdpOptions): Promise<TestIdp> {
  const clientId = opts.clientId ?? "beta9";
  const clientSecret = opts.clientSecret ?? `secret-${randomUUID()}`;
  const groupsClaim = opts.groupsClaim ?? "groups";
  const current = rsaKey();
  const retired = rsaKey();
  let server: Server | undefined;
  let port = 0;

  const listen = async () => {
    const s = createServer();
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => resolve());
    });
    port = (s.address() as AddressInfo).port;
    return s;
  };
  // The issuer holds the port: bind first, then build the provider for that address.
  server = await listen();
  const issuer = `http://127.0.0.1:${port}`;
  const groupsScopeClaims = groupsClaim.split(".")[0] ?? groupsClaim;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        // Any gateway the tests start on loopback: its port is chosen by the system.
        redirect_uris: ["http://127.0.0.1/ui/auth/callback"],
        grant_types: ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [current.privateJwk as Record<string, unknown>] },
    features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
    scopes: ["openid", "offline_access", "profile", "groups"],
    claims: { openid: ["sub"], profile: ["name"], groups: [groupsScopeClaims] },
    // Off: the ID token carries the scope's claims too (Keycloak's and Entra's habit); on: only userinfo.
    conformIdTokenClaims: opts.groupsIn === "userinfo",
    pkce: { required: () => true },
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
    ttl: { AccessToken: 600, IdToken: 600, RefreshToken: 86_400, DeviceCode: 600 },
    async findAccount(_ctx, sub) {
      const user = opts.users[sub];
      if (!user) return undefined;
      return {
        accountId: sub,
        async claims() {
          const claims: Record<string, unknown> = { sub, name: user.name };
          setPath(claims, groupsClaim, [...user.groups]);
          return claims as { sub: string } & Record<string, unknown>;
        },
      };
    },
  });
  // The gateway on loopback gets a redirect_uri with its port: loopback URIs match any port (RFC 8252).
  provider.Client.prototype.redirectUriAllowed = (uri: string) => {
    const u = new URL(uri);
    return u.hostname === "127.0.0.1" && u.pathname === "/ui/auth/callback";
  };
  const handler = provider.callback();
  server.on("request", handler);

  const sign = (claims: Record<string, unknown>, key: Jwk) => {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const input = `${enc({ alg: "RS256", typ: "JWT", kid: key.kid })}.${enc(claims)}`;
    const signature = createSign("RSA-SHA256").update(input).sign({ key, format: "jwk" }, "base64url");
    return `${input}.${signature}`;
  };

  return {
    issuer,
    clientId,
    clientSecret,
    users: opts.users,
    mint(claims, o = {}) {
      const now = Math.floor(Date.now() / 1000);
      return sign(
        { iss: issuer, aud: clientId, iat: now, exp: now + 300, ...claims },
        o.signer === "retired" ? retired.privateJwk : current.privateJwk,
      );
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    async start() {
      if (server) return;
      server = await listen();
      server.on("request", handler);
    },
  };
}

/**
 * Completes the test provider's own login and consent pages as a person would (any password), in a
 * page that a sign-in has brought there. The consent page is answered when the provider shows it.
 */
export async function signInAtIdp(page: Page, login: string): Promise<void> {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password");
  const loginPage = page.url();
  await page.locator('button[type="submit"]').click();
  // The consent page is another interaction (another URL), or the sign-in went on without one.
  await page.waitForURL((u) => u.href !== loginPage, { waitUntil: "domcontentloaded" });
  const consent = page.locator('input[name="prompt"][value="consent"]');
  if ((await consent.count()) > 0) await page.locator('button[type="submit"]').click();
}
