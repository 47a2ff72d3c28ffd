import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { UserError } from "./user-error.ts";

/** What `b9 login` writes. Holds a secret, hence mode 0600. */
export interface StoredConfig {
  gateway: string;
  /** An API key, or with `sso` the gateway's short-lived token (b9s_…); absent after b9 logout. */
  api_key?: string | undefined;
  /** Single sign-on (b9 login --sso): when api_key ends, and the refresh token that renews it. */
  sso?: SsoTokens | undefined;
  /** A PEM file of the CA that signed the gateway's certificate, when the system does not trust it. */
  ca_file?: string | undefined;
}

export interface SsoTokens {
  expires_at: string;
  refresh_token: string;
  refresh_expires_at: string;
}

/** A setting and where it came from, so errors can say which one to fix. */
export interface Setting {
  value: string;
  /** "BETA9_GATEWAY", "BETA9_API_KEY", "BETA9_CA_FILE" or the config file's path. */
  source: string;
}

export interface ResolvedConfig {
  /** The file `b9 login` writes and this reads. */
  path: string;
  gateway: Setting | undefined;
  apiKey: Setting | undefined;
  caFile: Setting | undefined;
  /** The single sign-on tokens of the file's api_key, when it came from the file. */
  sso: SsoTokens | undefined;
  /** Things worth telling the person, such as a config file others can read. */
  warnings: string[];
}

type Env = Readonly<Record<string, string | undefined>>;

export function configPath(env: Env): string {
  if (env.BETA9_CLI_CONFIG) return env.BETA9_CLI_CONFIG;
  return join(env.HOME || homedir(), ".config", "beta9", "cli.json");
}

/** Environment first, then the file; each setting separately. */
export function resolveConfig(env: Env): ResolvedConfig {
  const path = configPath(env);
  const warnings: string[] = [];
  const file = readConfigFile(path, warnings);
  const pick = (envName: string, fileValue: unknown): Setting | undefined => {
    const fromEnv = env[envName];
    if (fromEnv) return { value: fromEnv, source: envName };
    if (typeof fileValue === "string" && fileValue !== "") return { value: fileValue, source: path };
    return undefined;
  };
  const apiKey = pick("BETA9_API_KEY", file?.api_key);
  const sso = file?.sso;
  return {
    path,
    gateway: pick("BETA9_GATEWAY", file?.gateway),
    apiKey,
    caFile: pick("BETA9_CA_FILE", file?.ca_file),
    sso:
      apiKey?.source === path &&
      typeof sso?.refresh_token === "string" &&
      typeof sso.expires_at === "string" &&
      typeof sso.refresh_expires_at === "string"
        ? sso
        : undefined,
    warnings,
  };
}

function readConfigFile(path: string, warnings: string[]): Partial<StoredConfig> | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw new ConfigFileError(
      `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigFileError(`${path} is not valid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigFileError(`${path} should hold a JSON object with "gateway" and "api_key"`);
  }
  if ((statSync(path).mode & 0o077) !== 0) {
    warnings.push(`${path} holds an API key and others can read it; run chmod 600 ${path}`);
  }
  return parsed as Partial<StoredConfig>;
}

/** Written whole to a temporary file with mode 0600, then renamed, so no reader sees half a file. */
export function writeConfig(path: string, config: StoredConfig): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600); // the mode above is only applied when the file is new
  renameSync(temporary, path);
}

/** The file is there but unusable; logging in again rewrites it. */
export class ConfigFileError extends UserError {
  override name = "ConfigFileError";
  constructor(message: string) {
    super(message, "fix the file, or write it again with b9 login --gateway URL --api-key KEY");
  }
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && "code" in error && error.code === code;
}
