export type { ApiKey } from "./repositories/api-keys.ts";
export type { AuditCheckpoint, AuditEventRow, AuditPrune, AuditQuery } from "./repositories/audit.ts";
export type { Deployment } from "./repositories/deployments.ts";
export type { GatewayReplica, GatewayReplicaSummary } from "./repositories/gateway-replicas.ts";
export type { JobLog, JobOutput, JobUsage, LogBound, NewJobLog } from "./repositories/job-runs.ts";
export type { Job, JobEvent, NewJob, TransitionInfo } from "./repositories/jobs.ts";
export type { ConsumeResult, JoinToken } from "./repositories/join-tokens.ts";
export type { Machine, MachineFlags } from "./repositories/machines.ts";
export type { ModelProvenance } from "./repositories/model-provenance.ts";
export type { ReplicaPlacement } from "./repositories/placements.ts";
export type { Pool, PoolWithCount } from "./repositories/pools.ts";
export type {
  FootprintGroupBy,
  FootprintQuery,
  FootprintSummary,
  NewUsageRow,
  UsageGroupBy,
  UsageQuery,
  UsageRow,
  UsageSummary,
} from "./repositories/usage.ts";
export { NO_FOOTPRINT } from "./repositories/usage.ts";
export type { Workspace } from "./repositories/workspaces.ts";
export type { Database } from "./schema.ts";
export { Repositories, Store, type StoreConfig, storeConfigFrom } from "./store.ts";
