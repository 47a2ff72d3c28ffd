import { ApiError, Beta9Client } from "@beta9/sdk";
import { type ResolvedConfig, resolveConfig, type Setting, writeConfig } from "./config.ts";
import type { CliIO } from "./io.ts";
import { json } from "./output.ts";
import { LOGIN_HINT, SSO_LOGIN_HINT, UserError } from "./user-error.ts";

/** Renew a single sign-on token this long before it ends, so no command starts with one about to. */
const SSO_RENEW_BEFORE_MS = 60_000;

/** What every command needs: where to print, the settings, and a client built from them on first use. */
export class Context {
  readonly io: CliIO;
  /** What `b9` exits with when the command returns without throwing (an interactive chat sets it). */
  exitStatus = 0;
  #config: ResolvedConfig | undefined;
  #client: Beta9Client | undefined;

  constructor(io: CliIO) {
    this.io = io;
  }

  config(): ResolvedConfig {
    if (!this.#config) {
      this.#config = resolveConfig(this.io.env);
      for (const warning of this.#config.warnings) this.io.stderr(`warning: ${warning}\n`);
    }
    return this.#config;
  }

  /**
   * A single sign-on token that ends within a minute is renewed before the command runs (the gateway
   * asks the identity provider again), and the file rewritten; ended for good, the person is told to
   * sign in again.
   */
  async renewSignIn(): Promise<void> {
    const { gateway, sso, caFile, path } = this.config();
    if (!gateway || !sso || Date.parse(sso.expires_at) - this.now() > SSO_RENEW_BEFORE_MS) return;
    const anonymous = makeClient(gateway.value, "", gateway.source, caFile);
    let tokens: Awaited<ReturnType<Beta9Client["auth"]["refresh"]>>;
    try {
      tokens = await anonymous.auth.refresh(sso.refresh_token);
    } catch (error) {
      if (error instanceof ApiError && error.status < 500)
        throw new UserError(`your single sign-on has ended: ${error.message}`, SSO_LOGIN_HINT);
      throw error;
    }
    writeConfig(path, {
      gateway: gateway.value,
      api_key: tokens.access_token,
      sso: {
        expires_at: tokens.expires_at,
        refresh_token: tokens.refresh_token,
        refresh_expires_at: tokens.refresh_expires_at,
      },
      ...(caFile?.source === path ? { ca_file: caFile.value } : {}),
    });
    this.#config = undefined;
    this.#client = undefined;
  }

  client(): Beta9Client {
    if (this.#client) return this.#client;
    const { gateway, apiKey, caFile } = this.config();
    if (!gateway) throw new UserError("no gateway configured", LOGIN_HINT);
    if (!apiKey) throw new UserError(`no API key configured for the gateway ${gateway.value}`, LOGIN_HINT);
    this.#client = makeClient(gateway.value, apiKey.value, gateway.source, caFile);
    return this.#client;
  }

  now(): number {
    return this.io.now ? this.io.now() : Date.now();
  }

  /** Text for people, on stdout. */
  print(text: string): void {
    this.io.stdout(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** `--json` output, on stdout. */
  printJson(value: unknown): void {
    this.io.stdout(json(value));
  }

  /** Runs `handler` on Ctrl+C while something can be stopped; the returned function stops listening. */
  onInterrupt(handler: () => void): () => void {
    return this.io.onInterrupt ? this.io.onInterrupt(handler) : () => {};
  }

  /** Remarks that are not the answer (empty lists, notes), on stderr so pipes see only data. */
  note(text: string): void {
    this.io.stderr(`${text}\n`);
  }
}

/** The client, or a UserError naming the setting when its gateway address (or CA file) is not usable. */
export function makeClient(gateway: string, apiKey: string, source: string, caFile?: Setting): Beta9Client {
  try {
    return new Beta9Client({
      baseUrl: gateway,
      ...(apiKey ? { apiKey } : {}),
      ...(caFile ? { caFile: caFile.value } : {}),
    });
  } catch (error) {
    if (error instanceof TypeError) {
      if (caFile && error.message.startsWith("cannot read the CA file"))
        throw new UserError(`the CA file from ${caFile.source} is not usable: ${error.message}`, LOGIN_HINT);
      throw new UserError(`the gateway address from ${source} is not usable: ${error.message}`, LOGIN_HINT);
    }
    throw error;
  }
}
