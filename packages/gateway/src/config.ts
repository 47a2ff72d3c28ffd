import { homedir } from "node:os";
import { join } from "node:path";
import { GATEWAY_PORT } from "@beta9/protocol";
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
  /** On SIGTERM, how long answers under way may take to finish before agent channels close. */
  shutdownGraceMs: number;
  /** How long usage rows are kept; 0 keeps them forever. */
  usageRetentionMs: number;
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
    ...over,
  };
}
