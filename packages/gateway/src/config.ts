import { homedir } from "node:os";
import { join } from "node:path";
import { GATEWAY_PORT } from "@beta9/protocol";
import type { OidcConfig } from "./auth/oidc/rules.ts";
import type { LiveSourceOptions } from "./carbon/intensity.ts";
import { DEFAULT_LIVENESS, type LivenessConfig } from "./machines/liveness.ts";

export interface GatewayConfig {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl?: string | undefined;
  /** Where the other gateway replicas on the same PostgreSQL reach this one (default from host and port). */
  advertiseUrl?: string | undefined;
  liveness: LivenessConfig;
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /** How long a request may wait while its model is pulled and loaded (scale from zero). */
  coldStartTimeoutMs: number;
  /**
   * The machine (by name) that converts deployments first, e.g. an agent on the gateway's host with the
   * converters installed: the machines placed after copy its conversion. Absent: the first machine placed.
   */
  convertOn?: string | undefined;
  /** On SIGTERM, how long answers under way may take to finish before agent channels close. */
  shutdownGraceMs: number;
  /** How long usage rows are kept; 0 keeps them forever. */
  usageRetentionMs: number;
  /** How long audit events are kept (at least 6 months by default: the AI Act's record keeping); 0 keeps them forever. */
  auditRetentionMs: number;
  /** Serve HTTPS with this certificate (chain) and key, both PEM files; plain HTTP when absent. */
  tls?: { certFile: string; keyFile: string } | undefined;
  /**
   * Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed: a request from one of
   * them is logged (and audited) with the client address the proxy saw. Empty: the socket's peer.
   */
  trustedProxies: string[];
  /** Stop a generation whose client has not taken its answer for this long (0: never). */
  clientStallTimeoutMs: number;
  /** Requests one API key may have under way at once (null: no bound). */
  keyConcurrency: number | null;
  /** Bytes of inference request bodies held at once, gateway-wide (over it: 503). */
  inferenceBodyBudget: number;
  /** Also serve /metrics without a key on this address (e.g. 127.0.0.1:9464), for a local scraper. */
  metricsListen?: { host: string; port: number } | undefined;
  /** The operator's live grid-intensity source (carbon/intensity.ts); the shipped yearly table without it. */
  carbonIntensity?: LiveSourceOptions | undefined;
  /** How long a signed-in session lasts (the dashboard's cookie, the CLI's refresh). */
  sessionTtlMs: number;
  /** Single sign-on through this OpenID Connect provider; API keys only without it. */
  oidc?: OidcConfig | undefined;
}

export function defaultDataDir(): string {
  return process.env.BETA9_DATA_DIR ?? join(homedir(), ".beta9");
}

export function gatewayConfig(over: Partial<GatewayConfig> = {}): GatewayConfig {
  return {
    host: "0.0.0.0",
    port: GATEWAY_PORT,
    dataDir: defaultDataDir(),
    liveness: DEFAULT_LIVENESS,
    bodyLimit: 1024 * 1024,
    coldStartTimeoutMs: 300_000,
    shutdownGraceMs: 30_000,
    usageRetentionMs: 90 * 86_400_000,
    auditRetentionMs: 180 * 86_400_000,
    trustedProxies: [],
    clientStallTimeoutMs: 10_000,
    keyConcurrency: 32,
    inferenceBodyBudget: 256 * 1024 * 1024,
    sessionTtlMs: 12 * 3_600_000,
    ...over,
  };
}
