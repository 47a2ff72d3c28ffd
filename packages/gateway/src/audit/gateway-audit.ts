import { randomBytes } from "node:crypto";
import type { Logger } from "@beta9/http";
import type { Store } from "@beta9/store";
import type { FastifyInstance } from "fastify";
import { Counter, type Registry } from "prom-client";
import { loadAuditKeys } from "./keys.ts";
import { AuditLog, type AuditLogOptions } from "./log.ts";
import { installManagementAudit } from "./management.ts";

export interface GatewayAudit {
  audit: AuditLog;
  /** Every route registered after install, "METHOD url": what the route-enumeration test checks. */
  routes: readonly string[];
  install(app: FastifyInstance, metrics: Registry): void;
}

/**
 * The gateway's audit log, opened at start: its keys and chain from the data dir (a missing or
 * corrupt key is a start error that says what to do), its counters, and the management routes'
 * events. `install` goes before the routes are registered; `start` and `close` with the gateway's.
 */
export async function openGatewayAudit(
  store: Store,
  opts: { dataDir: string; log: Logger } & Partial<AuditLogOptions>,
): Promise<GatewayAudit> {
  const { dataDir, log, ...logOpts } = opts;
  const keys = await loadAuditKeys(
    dataDir,
    () => `gw_${randomBytes(6).toString("hex")}`,
    async (chain) => {
      if (chain !== undefined)
        return (
          (await store.audit.head(chain)) !== undefined ||
          (await store.audit.checkpoints()).some((c) => c.chain === chain)
        );
      // One SQLite file is one gateway's: any event there was signed with this data dir's key.
      return store.kind === "sqlite" && (await store.audit.count()) > 0;
    },
  );
  const counters = {
    dropped: new Counter({
      name: "beta9_audit_events_dropped_total",
      help: "Inference and job audit events that could not be written (batched, fail open)",
      registers: [],
    }),
    lost: new Counter({
      name: "beta9_audit_events_lost_total",
      help: "Management changes made whose audit event could not be written after the log was found writable",
      registers: [],
    }),
  };
  const audit = await AuditLog.open(store, keys, log, { ...logOpts, dropped: counters.dropped });
  const routes: string[] = [];
  return {
    audit,
    routes,
    install(app, metrics) {
      metrics.registerMetric(counters.dropped);
      metrics.registerMetric(counters.lost);
      installManagementAudit(app, { audit, store, log, lost: counters.lost, routes });
    },
  };
}
