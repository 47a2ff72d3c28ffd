import type { Logger } from "@beta9/http";
import type { Store } from "@beta9/store";
import type { Audit } from "./audit/audit.ts";
import type { ApiKeyAuth } from "./auth/api-keys.ts";
import type { MachineRegistry } from "./machines/registry.ts";

/** What every route plugin is given: the gateway's long-lived parts. */
export interface GatewayContext {
  store: Store;
  registry: MachineRegistry;
  auth: ApiKeyAuth;
  log: Logger;
  /** The audit log: record() for management changes and security events, enqueue() for the rest. */
  audit: Audit;
}
