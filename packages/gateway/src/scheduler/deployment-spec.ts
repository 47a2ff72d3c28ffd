import type { GpuRequirement } from "@beta9/protocol";
import type { Deployment } from "@beta9/store";
import type { PlacementNeeds } from "./placement.ts";
import type { DeploymentSpec } from "./replicas.ts";

/** A stored deployment as the scheduler uses it. */
export function deploymentSpec(row: Deployment): DeploymentSpec {
  return {
    name: row.name,
    workspaceId: row.workspace_id,
    source: row.source,
    sha256: row.sha256,
    engine: row.engine,
    minReplicas: row.min_replicas,
    maxReplicas: row.max_replicas,
    idleMs: row.idle_seconds * 1000,
    pool: row.pool,
    gpu: row.gpu as GpuRequirement,
    minVramBytes: row.min_vram_bytes,
    countries: row.countries.split(",").filter(Boolean),
    region: row.region,
    prefer: row.prefer === "low-carbon" ? "low-carbon" : null,
    contextSize: row.context_size,
    quantize: row.quantize,
    createdAt: row.created_at,
  };
}

/** What placement must satisfy for a replica of `dep`. */
export function placementNeeds(dep: DeploymentSpec): PlacementNeeds {
  return {
    model: dep.name,
    pool: dep.pool,
    gpu: dep.gpu,
    minVramBytes: dep.minVramBytes,
    countries: dep.countries,
    region: dep.region,
  };
}
