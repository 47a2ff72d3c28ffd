import { Beta9Client } from "@beta9/sdk";
import { type ResolvedConfig, resolveConfig, type Setting } from "./config.ts";
import type { CliIO } from "./io.ts";
import { json } from "./output.ts";
import { LOGIN_HINT, UserError } from "./user-error.ts";

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
    return new Beta9Client({ baseUrl: gateway, apiKey, ...(caFile ? { caFile: caFile.value } : {}) });
  } catch (error) {
    if (error instanceof TypeError) {
      if (caFile && error.message.startsWith("cannot read the CA file"))
        throw new UserError(`the CA file from ${caFile.source} is not usable: ${error.message}`, LOGIN_HINT);
      throw new UserError(`the gateway address from ${source} is not usable: ${error.message}`, LOGIN_HINT);
    }
    throw error;
  }
}
