import type { GpuRequirement } from "@beta9/protocol";
import type { DeploymentSpec } from "./replicas.ts";

/** The stored shape of a deployment, as the scheduler reads it. */
export interface DeploymentRowLike {
  workspace_id: string;
  name: string;
  source: string;
  sha256: string | null;
  engine: string | null;
  min_replicas: number;
  max_replicas: number;
  idle_seconds: number;
  pool: string;
  gpu: string;
  min_vram_bytes: number | null;
  countries: string;
  region: string | null;
  context_size: number | null;
}

export function deploymentSpec(row: DeploymentRowLike): DeploymentSpec {
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
    contextSize: row.context_size,
  };
}
