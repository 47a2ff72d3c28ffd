import type { Logger } from "@beta9/http";
import { Beta9Error, type DeviceStart } from "@beta9/protocol";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from "jose";
import * as oidc from "openid-client";
import type { SsoIdentity } from "../sessions.ts";
import { groupsAt, type OidcConfig } from "./rules.ts";

/** A person the provider vouched for: who (issuer, subject), their name, their groups. */
export interface Vouched {
  identity: SsoIdentity;
  groups: string[];
  /** The provider's refresh token, when it gave one: refreshes re-check the person's groups with it. */
  refreshToken: string | null;
}

const DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";

/**
 * The gateway as the OpenID Connect client of the operator's provider (openid-client and jose, by
 * panva: no JWT is checked by hand). Discovery is done on first use and again after a failure, so a
 * provider down at the gateway's start does not need a restart.
 */
export class OidcProvider {
  readonly #cfg: OidcConfig;
  readonly #log: Logger;
  #config: Promise<oidc.Configuration> | undefined;
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(cfg: OidcConfig, log: Logger) {
    this.#cfg = cfg;
    this.#log = log;
  }

  get issuer(): string {
    return this.#cfg.issuer;
  }

  /** The scopes asked for: groups too, since many providers send them only when asked. */
  get scope(): string {
    return "openid profile groups offline_access";
  }

  async #configuration(): Promise<oidc.Configuration> {
    this.#config ??= oidc
      .discovery(
        new URL(this.#cfg.issuer),
        this.#cfg.clientId,
        undefined,
        this.#cfg.clientSecret ? oidc.ClientSecretBasic(this.#cfg.clientSecret) : oidc.None(),
        // An http:// issuer is the operator's choice (a provider on loopback or a private network).
        this.#cfg.issuer.startsWith("http:") ? { execute: [oidc.allowInsecureRequests] } : undefined,
      )
      .catch((err: unknown) => {
        this.#config = undefined;
        throw err;
      });
    try {
      return await this.#config;
    } catch (err) {
      throw this.#failed(err, "discovery");
    }
  }

  /** An error of the provider's (down, refusing, answering nonsense) as the one sentence a person reads. */
  #failed(err: unknown, step: string): Beta9Error {
    if (err instanceof Beta9Error) return err;
    this.#log.warn({ err: String(err), step, issuer: this.#cfg.issuer }, "identity provider call failed");
    return new Beta9Error(
      "sso_failed",
      `the identity provider (${this.#cfg.issuer}) could not be reached or refused the ${step}; try again, and if it goes on, tell the pool's operator`,
      { cause: err },
    );
  }

  /** Where to send the browser to sign in (authorization code with PKCE), and what the callback checks. */
  async authorizationUrl(
    redirectUri: string,
  ): Promise<{ url: string; state: string; verifier: string; nonce: string }> {
    const config = await this.#configuration();
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
      // Providers give a refresh token for offline_access only after consent.
      prompt: "consent",
    });
    return { url: url.href, state, verifier, nonce };
  }

  /** The browser came back from the provider: the code exchanged, the ID token checked by openid-client. */
  async callback(
    currentUrl: URL,
    checks: { state: string; verifier: string; nonce: string },
  ): Promise<Vouched> {
    const config = await this.#configuration();
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.authorizationCodeGrant(config, currentUrl, {
        pkceCodeVerifier: checks.verifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw this.#failed(err, "sign-in");
    }
    return this.#vouched(config, tokens);
  }

  /** Starts a device sign-in (RFC 8628) for the CLI: the person approves it in a browser. */
  async startDevice(): Promise<DeviceStart> {
    const config = await this.#configuration();
    try {
      const r = await oidc.initiateDeviceAuthorization(config, { scope: this.scope });
      return {
        device_code: r.device_code,
        user_code: r.user_code,
        verification_uri: r.verification_uri,
        ...(r.verification_uri_complete ? { verification_uri_complete: r.verification_uri_complete } : {}),
        interval: r.interval ?? 5,
        expires_in: r.expires_in,
      };
    } catch (err) {
      throw this.#failed(err, "device sign-in");
    }
  }

  /** One poll of a device sign-in: the person, or authorization_pending / slow_down / refused. */
  async pollDevice(deviceCode: string): Promise<Vouched> {
    const config = await this.#configuration();
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.genericGrantRequest(config, DEVICE_GRANT, { device_code: deviceCode });
    } catch (err) {
      const code = err instanceof oidc.ResponseBodyError ? err.error : undefined;
      if (code === "authorization_pending")
        throw new Beta9Error("authorization_pending", "not approved yet: finish signing in in the browser");
      if (code === "slow_down")
        throw new Beta9Error("slow_down", "polling too often: wait longer between polls");
      if (code === "expired_token" || code === "access_denied" || code === "invalid_grant")
        throw new Beta9Error("sso_state", "this sign-in expired or was denied; run b9 login --sso again");
      throw this.#failed(err, "device sign-in");
    }
    return this.#vouched(config, tokens);
  }

  /** The person as the provider sees them now (groups may have changed), through their refresh token. */
  async refresh(refreshToken: string, expected: SsoIdentity): Promise<Vouched> {
    const config = await this.#configuration();
    let tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;
    try {
      tokens = await oidc.refreshTokenGrant(config, refreshToken);
    } catch (err) {
      if (err instanceof oidc.ResponseBodyError && err.error === "invalid_grant")
        throw new Beta9Error(
          "session_expired",
          "the identity provider no longer honours this sign-in; run b9 login --sso again",
        );
      throw this.#failed(err, "refresh");
    }
    const v = await this.#vouched(config, tokens, expected.subject);
    return { ...v, refreshToken: v.refreshToken ?? refreshToken };
  }

  /**
   * A provider-issued ID token presented to the gateway (a script's, a CI job's): verified with jose
   * against the provider's published keys, its issuer, this gateway's client id as audience, its times.
   */
  async verifyIdToken(token: string): Promise<Vouched> {
    const config = await this.#configuration();
    const meta = config.serverMetadata();
    if (!meta.jwks_uri) throw this.#failed(new Error("no jwks_uri"), "key lookup");
    this.#jwks ??= createRemoteJWKSet(new URL(meta.jwks_uri));
    try {
      const { payload } = await jwtVerify(token, this.#jwks, {
        issuer: meta.issuer,
        audience: this.#cfg.clientId,
        requiredClaims: ["sub", "exp"],
      });
      const claims = payload as Record<string, unknown>;
      return {
        identity: identityOf(meta.issuer, claims),
        groups: groupsAt(claims, this.#cfg.groupsClaim),
        refreshToken: null,
      };
    } catch (err) {
      throw new Beta9Error("sso_token_invalid", refusal(err, meta.issuer, this.#cfg.clientId), {
        cause: err,
      });
    }
  }

  async #vouched(
    config: oidc.Configuration,
    tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers,
    expectedSubject?: string,
  ): Promise<Vouched> {
    const claims = tokens.claims() as Record<string, unknown> | undefined;
    if (!claims) throw this.#failed(new Error("no ID token"), "sign-in");
    if (expectedSubject !== undefined && claims.sub !== expectedSubject)
      throw new Beta9Error("sso_state", "the provider answered for another person; sign in again");
    let groups = groupsAt(claims, this.#cfg.groupsClaim);
    // Many providers send groups only in userinfo: asked there when the ID token has none.
    if (groups.length === 0 && !hasPath(claims, this.#cfg.groupsClaim)) {
      try {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, String(claims.sub));
        groups = groupsAt(info as Record<string, unknown>, this.#cfg.groupsClaim);
      } catch (err) {
        throw this.#failed(err, "userinfo");
      }
    }
    return {
      identity: identityOf(config.serverMetadata().issuer, claims),
      groups,
      refreshToken: tokens.refresh_token ?? null,
    };
  }
}

function identityOf(issuer: string, claims: Record<string, unknown>): SsoIdentity {
  const subject = String(claims.sub);
  const name = [claims.name, claims.preferred_username, claims.email].find((v) => typeof v === "string");
  return { issuer, subject, name: (name as string | undefined) ?? subject };
}

function hasPath(claims: Record<string, unknown>, path: string): boolean {
  let v: unknown = claims;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object" || !(part in v)) return false;
    v = (v as Record<string, unknown>)[part];
  }
  return true;
}

/** Why a provider's token was refused, in one sentence a person can act on. */
function refusal(err: unknown, issuer: string, clientId: string): string {
  if (err instanceof joseErrors.JWTExpired) return "the identity provider's token has expired; sign in again";
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === "aud")
      return `the token was issued for another application, not this gateway (client id ${clientId}); get one for ${clientId}`;
    if (err.claim === "iss")
      return `the token was not issued by this gateway's identity provider (${issuer})`;
    return `the token's ${err.claim} claim is not acceptable (${err.reason}); sign in again`;
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey)
    return "the token is signed by a key the identity provider no longer publishes (rotated out); sign in again";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return "the token's signature does not verify with the identity provider's keys; it was altered or forged";
  return "the token is not a valid ID token of this gateway's identity provider; sign in again";
}
