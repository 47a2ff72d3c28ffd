import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CONTROL_PORT, countryProblem, GATEWAY_PORT } from "@beta9/protocol";
import YAML from "yaml";
import { AllowList } from "../models/source-policy.ts";

/**
 * ~/.b9agent/config.yaml, with the fork's keys (gateway.host, gateway.port, machine.id, …; the fork:
 * docs/architecture.md §1).
 */
/** One gateway's address. */
export interface GatewayAddress {
  host: string;
  port: number;
  tls: boolean;
}

export interface AgentConfig {
  /**
   * The gateway dialled first (the fork's key). `ca_file`: a PEM file of the CA that signed the
   * gateway's (or its TLS proxy's) certificate, trusted besides the system's, for every replica.
   */
  gateway: GatewayAddress & { ca_file?: string | undefined };
  /**
   * Every replica of the gateway, in the order tried (`gateway` first): when one is unreachable the
   * agent dials the next. Absent or one entry: a single gateway.
   */
  gateways?: GatewayAddress[] | undefined;
  machine: {
    id: string;
    name: string;
    /** The machine credential (b9m_…) once joined. */
    token: string;
    /** The join token, kept only until it has been traded for a credential. */
    join_token?: string | undefined;
    hostname: string;
    /** ISO 3166 alpha-2 code of where the machine stands ("DE"), sent at join; deployments may be pinned to countries. */
    country?: string | undefined;
  };
  pool: string;
  control: { port: number; listen?: string[] | undefined };
  heartbeat_interval_seconds: number;
  /** Where models live and where the owner allows them to come from. */
  models?:
    | {
        dir?: string | undefined;
        /** Local directories model files may be read from (besides the store). */
        allowed_dirs?: string[] | undefined;
        /** Base URL for hf: sources (a mirror); default https://huggingface.co. */
        huggingface_url?: string | undefined;
        /** Sent as `Authorization: Bearer` to huggingface_url only, for private repositories (else HF_TOKEN). */
        huggingface_token?: string | undefined;
        /** Private, loopback or link-local networks (CIDR) or host names a workspace's source may reach. */
        allow_private_sources?: string[] | undefined;
        /** Largest model file a pull may download (bytes); default 256 GiB. */
        max_model_bytes?: number | undefined;
        /** Room for unfinished downloads kept for a resume (bytes); the oldest go first; default 32 GiB. */
        max_partial_bytes?: number | undefined;
      }
    | undefined;
  inference?:
    | {
        /** The engine to prefer when several could serve a model. */
        engine?: string | undefined;
        /**
         * Keep one builtin engine process running with no model loaded, from the agent's start and
         * after its last model is unloaded, so a start from zero only loads the model (no process
         * boot, about 0.8 s). On unless set to false: a cold start is what a request to a model
         * scaled to zero waits for. The idle process takes about 160 MB of RAM, and on a CUDA, Vulkan
         * or Metal machine its llama.cpp backend also holds GPU memory; false gives both back while
         * no model runs.
         */
        keep_engine_warm?: boolean | undefined;
      }
    | undefined;
  /** Jobs: which root filesystems the owner lets jobs run in, and how podman runs them. */
  jobs?:
    | {
        /** Directories a job's rootfs may be in (none: no rootfs jobs). */
        rootfs_dirs?: string[] | undefined;
        /**
         * Where jobs' Python environments get packages: a PyPI-style simple index URL used instead
         * of PyPI (a mirror reachable from this machine), or "none" for find_links alone.
         */
        package_index?: string | undefined;
        /** Folders or URLs of wheels uv may install from, besides the index. */
        find_links?: string[] | undefined;
        /** How much jobs' Python environments may take together; the least recently used go beyond it. */
        max_env_bytes?: number | undefined;
        podman?:
          | {
              runtime?: string | undefined;
              cgroup_manager?: string | undefined;
              storage_driver?: string | undefined;
              ulimits?: string[] | undefined;
            }
          | undefined;
      }
    | undefined;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function configPath(): string {
  return process.env.B9AGENT_CONFIG ?? join(homedir(), ".b9agent", "config.yaml");
}

/** The URL of the gateway dialled first. */
export function gatewayUrl(cfg: AgentConfig): string {
  return addressUrl(cfg.gateway);
}

export function addressUrl(g: GatewayAddress): string {
  const host = g.host.includes(":") ? `[${g.host}]` : g.host;
  return `${g.tls ? "https" : "http"}://${host}:${g.port}`;
}

/** Every gateway replica in the order tried: `gateway` first, then the others of `gateways`. */
export function gatewayAddresses(cfg: AgentConfig): GatewayAddress[] {
  const out = [cfg.gateway];
  for (const g of cfg.gateways ?? []) if (!out.some((o) => addressUrl(o) === addressUrl(g))) out.push(g);
  return out;
}

/** "HOST:PORT", "HOST" or "http(s)://HOST:PORT" → gateway settings. */
export function parseGatewayAddress(text: string): GatewayAddress {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ConfigError(
      `--gateway must look like HOST:PORT (e.g. 100.72.101.23:${GATEWAY_PORT}), not ${JSON.stringify(text)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new ConfigError("--gateway must use http or https");
  if (url.pathname !== "/" || url.search) throw new ConfigError("--gateway takes a host and port, no path");
  const tls = url.protocol === "https:";
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : tls ? 443 : GATEWAY_PORT,
    tls,
  };
}

/** "de", " DE " → "DE"; a code ISO assigns to no country ("XX", "UK") is refused with the right one. */
export function parseCountry(text: string): string {
  const problem = countryProblem(text);
  if (problem) throw new ConfigError(problem);
  return text.trim().toUpperCase();
}

/**
 * Read the config, refusing one that others can read: it holds the machine's credential.
 */
export async function loadConfig(path = configPath()): Promise<AgentConfig> {
  let text: string;
  try {
    const st = await stat(path);
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
      throw new ConfigError(
        `${path} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); it holds this machine's credential. Fix it with: chmod 600 ${path}`,
      );
    }
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new ConfigError(
        `no agent config at ${path}; create it with: b9agent init --gateway HOST:PORT --token JOIN_TOKEN`,
      );
    }
    throw err;
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid YAML: ${(err as Error).message}`);
  }
  return validate(doc, path);
}

function validate(doc: unknown, path: string): AgentConfig {
  const d = (doc ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const bad = (what: string) => new ConfigError(`${path}: ${what}; run b9agent init again to rewrite it`);
  const m = d.machine;
  let gateways: GatewayAddress[] | undefined;
  const listed = (doc as Record<string, unknown>).gateways;
  if (listed !== undefined && listed !== null) {
    if (!Array.isArray(listed) || listed.length === 0 || !listed.every((x) => typeof x === "string"))
      throw bad('gateways must be a list of addresses such as ["10.0.0.1:1994", "10.0.0.2:1994"]');
    try {
      gateways = listed.map((x) => parseGatewayAddress(x));
    } catch (err) {
      throw bad(`gateways: ${(err as Error).message.replace(/^--gateway/, "each address")}`);
    }
  }
  const g = d.gateway ?? (gateways?.[0] as Record<string, unknown> | undefined);
  if (!g || typeof g.host !== "string" || !g.host) throw bad("gateway.host is missing");
  const port = Number(g.port ?? GATEWAY_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad("gateway.port must be a port number");
  if (!m || typeof m.id !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/.test(m.id))
    throw bad("machine.id is missing or malformed");
  const token = typeof m.token === "string" ? m.token : "";
  const joinToken = typeof m.join_token === "string" && m.join_token ? m.join_token : undefined;
  if (!token && !joinToken) throw bad("machine.token (or machine.join_token) is missing");
  let country: string | undefined;
  if (m.country !== undefined && m.country !== null) {
    try {
      country = parseCountry(String(m.country));
    } catch (err) {
      throw bad(`machine.country: ${(err as Error).message}`);
    }
  }
  const c = (d.control ?? {}) as Record<string, unknown>;
  const controlPort = Number(c.port ?? CONTROL_PORT);
  if (!Number.isInteger(controlPort) || controlPort < 0 || controlPort > 65535)
    throw bad("control.port must be a port number");
  const listen = Array.isArray(c.listen) ? c.listen.map(String) : undefined;
  const caFile = d.gateway?.ca_file;
  if (caFile !== undefined && caFile !== null && (typeof caFile !== "string" || !caFile))
    throw bad("gateway.ca_file must be the path of a PEM file");
  const interval = Number((doc as Record<string, unknown>).heartbeat_interval_seconds ?? 5);
  if (!(interval > 0 && interval <= 300)) throw bad("heartbeat_interval_seconds must be between 0 and 300");
  const models = (d.models ?? {}) as Record<string, unknown>;
  const inference = (d.inference ?? {}) as Record<string, unknown>;
  if (inference.keep_engine_warm !== undefined && typeof inference.keep_engine_warm !== "boolean")
    throw bad("inference.keep_engine_warm must be true or false");
  const strings = (v: unknown, what: string) => {
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string"))
      throw bad(`${what} must be a list of paths`);
    return v as string[];
  };
  const bytes = (v: unknown, what: string) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) > 0))
      throw bad(`${what} must be a positive number of bytes`);
    return v as number | undefined;
  };
  const privateSources = strings(models.allow_private_sources, "models.allow_private_sources");
  const jobs = (d.jobs ?? {}) as Record<string, unknown>;
  const podman = (jobs.podman ?? {}) as Record<string, unknown>;
  const word = (v: unknown, what: string) => {
    if (v !== undefined && (typeof v !== "string" || !/^[A-Za-z0-9._/-]+$/.test(v)))
      throw bad(`${what} must be a single word such as runc`);
    return v as string | undefined;
  };
  const ulimits = strings(podman.ulimits, "jobs.podman.ulimits");
  const packageIndex = jobs.package_index;
  if (
    packageIndex !== undefined &&
    (typeof packageIndex !== "string" || (packageIndex !== "none" && !/^https?:\/\/\S+$/.test(packageIndex)))
  )
    throw bad(
      'jobs.package_index must be an http(s) URL of a simple index, such as https://pypi.example.org/simple, or "none"',
    );
  const findLinks = jobs.find_links;
  if (
    findLinks !== undefined &&
    (!Array.isArray(findLinks) ||
      findLinks.some((f) => typeof f !== "string" || !(/^https?:\/\/\S+$/.test(f) || f.startsWith("/"))))
  )
    throw bad("jobs.find_links must be a list of absolute folders or http(s) URLs of wheels");
  if (ulimits?.some((u) => !/^[a-z]+=-?\d+(:-?\d+)?$/.test(u)))
    throw bad('jobs.podman.ulimits must be a list such as ["nofile=4096:4096", "nproc=4096:4096"]');
  try {
    new AllowList(privateSources);
  } catch (err) {
    throw bad(`models.allow_private_sources: ${(err as Error).message}`);
  }
  return {
    gateway: { host: g.host, port, tls: g.tls === true, ...(caFile ? { ca_file: caFile as string } : {}) },
    ...(gateways && gateways.length > 1 ? { gateways } : {}),
    machine: {
      id: m.id,
      name: typeof m.name === "string" && m.name ? m.name : m.id,
      token,
      join_token: joinToken,
      hostname: typeof m.hostname === "string" ? m.hostname : "",
      country,
    },
    pool: typeof d.pool === "string" ? d.pool : "external",
    control: { port: controlPort, listen },
    heartbeat_interval_seconds: interval,
    models: {
      dir: typeof models.dir === "string" ? models.dir : undefined,
      allowed_dirs: strings(models.allowed_dirs, "models.allowed_dirs"),
      huggingface_url: typeof models.huggingface_url === "string" ? models.huggingface_url : undefined,
      huggingface_token:
        typeof models.huggingface_token === "string" && models.huggingface_token !== ""
          ? models.huggingface_token
          : undefined,
      allow_private_sources: privateSources,
      max_model_bytes: bytes(models.max_model_bytes, "models.max_model_bytes"),
      max_partial_bytes: bytes(models.max_partial_bytes, "models.max_partial_bytes"),
    },
    inference: {
      engine: typeof inference.engine === "string" ? inference.engine : undefined,
      keep_engine_warm: inference.keep_engine_warm as boolean | undefined,
    },
    ...(d.jobs === undefined
      ? {}
      : {
          jobs: {
            rootfs_dirs: strings(jobs.rootfs_dirs, "jobs.rootfs_dirs"),
            ...(packageIndex === undefined ? {} : { package_index: packageIndex as string }),
            ...(findLinks === undefined ? {} : { find_links: findLinks as string[] }),
            ...(jobs.max_env_bytes === undefined
              ? {}
              : { max_env_bytes: bytes(jobs.max_env_bytes, "jobs.max_env_bytes") }),
            podman: {
              runtime: word(podman.runtime, "jobs.podman.runtime"),
              cgroup_manager: word(podman.cgroup_manager, "jobs.podman.cgroup_manager"),
              storage_driver: word(podman.storage_driver, "jobs.podman.storage_driver"),
              ulimits,
            },
          },
        }),
  };
}

/** Write atomically (temp file, then rename) with mode 0600, so a crash never leaves half a config. */
export async function saveConfig(cfg: AgentConfig, path = configPath()): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  const doc: Record<string, unknown> = {
    gateway: cfg.gateway,
    // Written as the addresses one types: the list `b9agent init --gateway A,B` was given.
    ...(cfg.gateways && cfg.gateways.length > 1
      ? { gateways: cfg.gateways.map((a) => addressUrl(a).replace(/^http:\/\//, "")) }
      : {}),
    machine: { ...cfg.machine, join_token: cfg.machine.join_token || undefined },
    pool: cfg.pool,
    control: { port: cfg.control.port, ...(cfg.control.listen ? { listen: cfg.control.listen } : {}) },
    heartbeat_interval_seconds: cfg.heartbeat_interval_seconds,
    ...(cfg.models && Object.values(cfg.models).some((v) => v !== undefined) ? { models: cfg.models } : {}),
    ...(cfg.inference && Object.values(cfg.inference).some((v) => v !== undefined)
      ? { inference: cfg.inference }
      : {}),
    ...(cfg.jobs ? { jobs: cfg.jobs } : {}),
  };
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(
      `# Beta9 agent configuration. Holds this machine's credential: keep it private (mode 0600).\n${YAML.stringify(doc)}`,
    );
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

/** Eight hex digits, as the fork's ids; never one YAML would read as a number (e.g. "5e328691"). */
export function newMachineId(): string {
  for (;;) {
    const id = randomBytes(4).toString("hex");
    if (!/^[0-9]+(e[0-9]+)?$/.test(id)) return id;
  }
}
