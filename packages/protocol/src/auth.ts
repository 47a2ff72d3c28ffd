import { type Static, Type } from "typebox";
import { Scope } from "./management.ts";

/*
 * Signing in: the dashboard's cookie sessions and the CLI's single sign-on tokens. A session is a
 * short-lived credential of its own, never the key or the provider's token it was opened with.
 */

/** The dashboard's session cookie (HttpOnly, SameSite=Strict). */
export const SESSION_COOKIE = "b9_session";
/** The header a change sent with the session cookie must carry: the session's csrf_token. */
export const CSRF_HEADER = "x-csrf-token";
/** Session tokens (the cookie's value, the CLI's bearer token): `b9s_…`; refresh tokens: `b9r_…`. */
export const SESSION_PREFIX = { session: "b9s_", refresh: "b9r_" } as const;

export const SessionIdentity = Type.Object({
  /** "key": opened with an API key; "sso": signed in through the identity provider. */
  kind: Type.Union([Type.Literal("key"), Type.Literal("sso")]),
  /** The key's name, or the person's name as the provider gives it. */
  name: Type.String(),
  workspace: Type.String(),
  scopes: Type.Array(Scope),
  /** Of the operator's workspace, which runs the pool. */
  operator: Type.Boolean(),
});
export type SessionIdentity = Static<typeof SessionIdentity>;

export const OpenSession = Type.Object(
  { api_key: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
export type OpenSession = Static<typeof OpenSession>;

export const SessionView = Type.Object({
  identity: SessionIdentity,
  csrf_token: Type.String(),
  expires_at: Type.String({ format: "date-time" }),
});
export type SessionView = Static<typeof SessionView>;

export const AuthConfig = Type.Object({
  sso: Type.Boolean(),
  issuer: Type.Union([Type.String(), Type.Null()]),
});
export type AuthConfig = Static<typeof AuthConfig>;

/** `POST /api/v1/auth/device`: a device sign-in started (RFC 8628's answer, through the gateway). */
export const DeviceStart = Type.Object({
  /** Pass to `POST /api/v1/auth/device/token` while polling. */
  device_code: Type.String(),
  user_code: Type.String(),
  verification_uri: Type.String(),
  verification_uri_complete: Type.Optional(Type.String()),
  /** Seconds between polls. */
  interval: Type.Integer({ minimum: 1 }),
  expires_in: Type.Integer({ minimum: 1 }),
});
export type DeviceStart = Static<typeof DeviceStart>;

export const DevicePoll = Type.Object(
  { device_code: Type.String({ minLength: 1, maxLength: 4096 }) },
  { additionalProperties: false },
);
export type DevicePoll = Static<typeof DevicePoll>;

export const RefreshSession = Type.Object(
  { refresh_token: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
export type RefreshSession = Static<typeof RefreshSession>;

/** The CLI's tokens: a short-lived bearer token and the refresh token that renews it. */
export const SessionTokens = Type.Object({
  identity: SessionIdentity,
  access_token: Type.String(),
  expires_at: Type.String({ format: "date-time" }),
  refresh_token: Type.String(),
  refresh_expires_at: Type.String({ format: "date-time" }),
});
export type SessionTokens = Static<typeof SessionTokens>;
