import type { DeviceStart, SessionTokens, SessionView } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

/** Signing in: single sign-on's device flow and refresh (the CLI's), and ending a session. */
export class Auth {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** Starts a device sign-in (RFC 8628): show `verification_uri_complete` and `user_code` to the person. */
  async startDevice(options?: RequestOptions): Promise<DeviceStart> {
    return this.#http.post("/api/v1/auth/device", undefined, options);
  }

  /** One poll: the tokens, or ApiError `authorization_pending` / `slow_down` until the person approves. */
  async pollDevice(deviceCode: string, options?: RequestOptions): Promise<SessionTokens> {
    return this.#http.post("/api/v1/auth/device/token", { device_code: deviceCode }, options);
  }

  /** New tokens for a refresh token (used once); the gateway asks the identity provider again. */
  async refresh(refreshToken: string, options?: RequestOptions): Promise<SessionTokens> {
    return this.#http.post("/api/v1/auth/refresh", { refresh_token: refreshToken }, options);
  }

  /** The session this client's token belongs to. */
  async session(options?: RequestOptions): Promise<SessionView> {
    return this.#http.get("/api/v1/auth/session", undefined, options);
  }

  /** Ends the session this client's token belongs to, on the gateway. */
  async endSession(options?: RequestOptions): Promise<void> {
    await this.#http.delete("/api/v1/auth/session", options);
  }
}
