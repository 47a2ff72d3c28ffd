import type { ApiKeyView, JoinTokenView, PoolView, Scope } from "@beta9/protocol";
import type { ApiKey, JoinToken, PoolWithCount, Workspace } from "@beta9/store";

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
    ...(secret ? { key: secret } : {}),
  };
}

export function poolView(p: PoolWithCount): PoolView {
  return { name: p.name, description: p.description, machines: p.machines, created_at: iso(p.created_at) };
}
