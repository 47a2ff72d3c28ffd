import type {
  ApiKeyView,
  DeploymentView,
  JoinTokenView,
  PoolView,
  Scope,
  WorkspaceView,
} from "@beta9/protocol";
import type { ApiKey, Deployment, JoinToken, PoolWithCount, Workspace } from "@beta9/store";
import { OPERATOR_WORKSPACE } from "./auth/api-keys.ts";
import { residencyOf } from "./auth/residency.ts";

const iso = (ms: number) => new Date(ms).toISOString();

export function joinTokenView(t: JoinToken, secret?: string): JoinTokenView {
  return {
    id: t.id,
    pool: t.pool,
    description: t.description,
    expires_at: iso(t.expires_at),
    uses_total: t.uses_total,
    uses_left: t.uses_left,
    revoked: t.revoked_at !== null,
    created_at: iso(t.created_at),
    country: t.country,
    ...(secret ? { token: secret } : {}),
  };
}

export function apiKeyView(
  k: ApiKey,
  workspace: Pick<Workspace, "name"> | undefined,
  secret?: string,
): ApiKeyView {
  return {
    id: k.id,
    name: k.name,
    workspace: workspace?.name ?? k.workspace_id,
    scopes: k.scopes.split(",").filter(Boolean) as Scope[],
    prefix: k.prefix,
    revoked: k.revoked_at !== null,
    created_at: iso(k.created_at),
    last_used_at: k.last_used_at === null ? null : iso(k.last_used_at),
    rpm_limit: k.rpm_limit,
    tpm_limit: k.tpm_limit,
    ...residencyOf(k),
    ...(secret ? { key: secret } : {}),
  };
}

export function poolView(p: PoolWithCount): PoolView {
  return { name: p.name, description: p.description, machines: p.machines, created_at: iso(p.created_at) };
}

export function deploymentView(
  d: Deployment,
  workspace: Pick<Workspace, "name"> | undefined,
): DeploymentView {
  return {
    name: d.name,
    workspace: workspace?.name ?? d.workspace_id,
    source: d.source,
    sha256: d.sha256,
    // Written only from validated requests, so the stored text is one of the wire's literals.
    engine: d.engine as DeploymentView["engine"],
    min_replicas: d.min_replicas,
    max_replicas: d.max_replicas,
    idle_seconds: d.idle_seconds,
    pool: d.pool,
    gpu: d.gpu as DeploymentView["gpu"],
    min_vram_bytes: d.min_vram_bytes,
    countries: d.countries.split(",").filter(Boolean),
    region: d.region as DeploymentView["region"],
    prefer: d.prefer === "low-carbon" ? "low-carbon" : null,
    context_size: d.context_size,
    quantize: d.quantize,
    created_at: iso(d.created_at),
  };
}

export function workspaceView(w: Workspace): WorkspaceView {
  return {
    id: w.id,
    name: w.name,
    operator: w.name === OPERATOR_WORKSPACE,
    rpm_limit: w.rpm_limit,
    tpm_limit: w.tpm_limit,
    max_jobs: w.max_jobs,
    gpu_hours_per_day: w.gpu_hours_per_day,
    ...residencyOf(w),
    audit_content: w.audit_content_since !== null,
    audit_content_since: w.audit_content_since === null ? null : iso(w.audit_content_since),
    created_at: iso(w.created_at),
  };
}
