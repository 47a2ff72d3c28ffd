import type { Migration, MigrationProvider } from "kysely";
import * as foundation from "./2026-11-27T0000-foundation.ts";
import * as deployments from "./2026-11-27T0100-deployments.ts";
import * as usageLimits from "./2026-11-28T0000-usage-limits.ts";
import * as gatewayReplicas from "./2026-11-29T0000-gateway-replicas.ts";
import * as replicaHeldMachines from "./2026-11-30T0000-replica-held-machines.ts";
import * as poolUniqueDeploymentNames from "./2026-12-01T0000-pool-unique-deployment-names.ts";
import * as usageStartedIndex from "./2026-12-01T0100-usage-started-index.ts";
import * as replicaKeySpending from "./2026-12-01T0200-replica-key-spending.ts";
import * as workspaceLimits from "./2026-12-01T0300-workspace-limits.ts";
import * as canonicalDeploymentNames from "./2026-12-06T0000-canonical-deployment-names.ts";
import * as replicaPlacements from "./2026-12-06T0100-replica-placements.ts";
import * as jobs from "./2026-12-06T0200-jobs.ts";
import * as jobRuns from "./2026-12-06T0300-job-runs.ts";
import * as workspaceJobLimit from "./2026-12-06T0400-workspace-job-limit.ts";
import * as activeJobsIndex from "./2026-12-06T0500-active-jobs-index.ts";
import * as workspaceGpuHours from "./2026-12-06T0600-workspace-gpu-hours.ts";
import * as energyCarbon from "./2026-12-07T0000-energy-carbon.ts";
import * as residency from "./2026-12-07T0100-residency.ts";
import * as lowCarbon from "./2026-12-07T0300-low-carbon.ts";
import * as audit from "./2026-12-07T0400-audit.ts";
import * as requestIds from "./2026-12-07T0500-request-ids.ts";
import * as modelProvenance from "./2026-12-07T0600-model-provenance.ts";
import * as auditContent from "./2026-12-08T0000-audit-content.ts";
import * as sessions from "./2026-12-08T0100-sessions.ts";
import * as deploymentQuantize from "./2026-12-08T0200-deployment-quantize.ts";
import * as replicaHeldAt from "./2026-12-08T0300-replica-held-at.ts";
import * as machineFlagChanges from "./2026-12-08T0400-machine-flag-changes.ts";

/** Migrations are listed here, not found on disk, so they work wherever the package is loaded from. */
export const migrationProvider: MigrationProvider = {
  async getMigrations(): Promise<Record<string, Migration>> {
    return {
      "2026-11-27T0000-foundation": foundation,
      "2026-11-27T0100-deployments": deployments,
      "2026-11-28T0000-usage-limits": usageLimits,
      "2026-11-29T0000-gateway-replicas": gatewayReplicas,
      "2026-11-30T0000-replica-held-machines": replicaHeldMachines,
      "2026-12-01T0000-pool-unique-deployment-names": poolUniqueDeploymentNames,
      "2026-12-01T0100-usage-started-index": usageStartedIndex,
      "2026-12-01T0200-replica-key-spending": replicaKeySpending,
      "2026-12-01T0300-workspace-limits": workspaceLimits,
      "2026-12-06T0000-canonical-deployment-names": canonicalDeploymentNames,
      "2026-12-06T0100-replica-placements": replicaPlacements,
      "2026-12-06T0200-jobs": jobs,
      "2026-12-06T0300-job-runs": jobRuns,
      "2026-12-06T0400-workspace-job-limit": workspaceJobLimit,
      "2026-12-06T0500-active-jobs-index": activeJobsIndex,
      "2026-12-06T0600-workspace-gpu-hours": workspaceGpuHours,
      "2026-12-07T0000-energy-carbon": energyCarbon,
      "2026-12-07T0100-residency": residency,
      "2026-12-07T0300-low-carbon": lowCarbon,
      "2026-12-07T0400-audit": audit,
      "2026-12-07T0500-request-ids": requestIds,
      "2026-12-07T0600-model-provenance": modelProvenance,
      "2026-12-08T0100-sessions": sessions,
      "2026-12-08T0000-audit-content": auditContent,
      "2026-12-08T0200-deployment-quantize": deploymentQuantize,
      "2026-12-08T0300-replica-held-at": replicaHeldAt,
      "2026-12-08T0400-machine-flag-changes": machineFlagChanges,
    };
  },
};
