import {
  Beta9Error,
  type CreateDeployment,
  canonicalModelName,
  parseCountry,
  parseQuantization,
  type Residency,
} from "@beta9/protocol";
import type { Deployment } from "@beta9/store";
import { callerResidency, narrowAsked, residencyOf } from "../auth/residency.ts";
import type { GatewayContext } from "../context.ts";

/** Defaults of a deployment that says nothing more than its name and source: scale to zero, one replica. */
export const DEPLOYMENT_DEFAULTS = {
  min_replicas: 0,
  max_replicas: 1,
  idle_seconds: 300,
  pool: "external",
  gpu: "any",
} as const;

/** Add a deployment to a workspace, with the defaults for what it leaves out; refusals explain themselves. */
export async function createDeployment(
  ctx: GatewayContext,
  workspaceId: string,
  b: CreateDeployment,
): Promise<Deployment> {
  const min = b.min_replicas ?? DEPLOYMENT_DEFAULTS.min_replicas;
  // A bare --min 2 means "at least two": the ceiling rises with it rather than refusing.
  const max = b.max_replicas ?? Math.max(DEPLOYMENT_DEFAULTS.max_replicas, min);
  if (max < min) {
    throw new Beta9Error(
      "bad_request",
      `max_replicas (${max}) is below min_replicas (${min}); raise max_replicas or lower min_replicas`,
    );
  }
  const pool = b.pool ?? DEPLOYMENT_DEFAULTS.pool;
  if (!(await ctx.store.pools.get(pool))) {
    throw new Beta9Error(
      "pool_unknown",
      `no pool named ${pool}; create it with \`b9 pool create ${pool}\` or leave --pool out`,
    );
  }
  const quantize = quantizationOf(b);
  const where = await withinWorkspace(ctx, workspaceId, b);
  // One canonical form (lowercase): "VICTIM" is the deployment "victim", refused if another has it.
  const name = canonicalModelName(b.name);
  const row: Deployment = {
    workspace_id: workspaceId,
    name,
    source: b.source,
    sha256: b.sha256 ?? null,
    engine: b.engine ?? null,
    min_replicas: min,
    max_replicas: max,
    idle_seconds: b.idle_seconds ?? DEPLOYMENT_DEFAULTS.idle_seconds,
    pool,
    gpu: b.gpu ?? DEPLOYMENT_DEFAULTS.gpu,
    min_vram_bytes: b.min_vram_bytes ?? null,
    countries: where.countries.join(","),
    region: where.region,
    prefer: b.prefer ?? null,
    context_size: b.context_size ?? null,
    quantize,
    created_at: Date.now(),
  };
  // A model a machine's owner serves by hand is called by that name: a deployment would route to it.
  if (ctx.registry.servedByHand(name) && (await ctx.store.deployments.named([name])).length === 0) {
    throw new Beta9Error(
      "conflict",
      `a machine serves a model named ${name} that no deployment placed (started there by hand); deploy under another name, e.g. ${name}-2`,
    );
  }
  if (!(await ctx.store.deployments.insert(row))) {
    if (await ctx.store.deployments.get(workspaceId, name)) {
      throw new Beta9Error(
        "conflict",
        `a deployment named ${name} exists already in this workspace; remove it first with \`b9 model remove ${name}\``,
      );
    }
    // Machines serve a model under its name, so a name is one model for the whole pool (in any case).
    throw new Beta9Error(
      "conflict",
      `another workspace has deployed a model named ${name}, and a name means one model in the pool (names ignore case); deploy under another name, e.g. ${name}-2`,
    );
  }
  ctx.log.info(
    { workspace_id: row.workspace_id, model: row.name, pool, min_replicas: min, max_replicas: max },
    "deployment created",
  );
  return row;
}

/** The type machines convert the source to, in its one spelling; refused before anything is placed. */
function quantizationOf(b: CreateDeployment): string | null {
  if (b.quantize === undefined) return null;
  const parsed = parseQuantization(b.quantize, b.name);
  if (!parsed.ok) throw new Beta9Error("invalid_quantization", parsed.message);
  // Ollama keeps its own models: there is no GGUF of ours to convert.
  if (b.source.startsWith("ollama:"))
    throw new Beta9Error(
      "invalid_quantization",
      `cannot quantize ${b.name}: ollama: sources are Ollama's own models; give a GGUF source (http(s)://…, hf:ORG/REPO/FILE.gguf) or leave --quantize out`,
    );
  return parsed.type;
}

/**
 * Where the deployment may run: within its workspace's residency (a country named outside it is
 * refused; a region, or nothing, narrowed to the workspace's countries).
 */
async function withinWorkspace(
  ctx: GatewayContext,
  workspaceId: string,
  b: CreateDeployment,
): Promise<Residency> {
  const asked: Residency = { countries: (b.countries ?? []).map(parseCountry), region: b.region ?? null };
  const workspace = await ctx.store.workspaces.byId(workspaceId);
  if (!workspace) return asked;
  const ws = residencyOf(workspace);
  // Asking nothing in a residency workspace: the workspace's own words ("the EU"), not a list of 27.
  if (asked.countries.length === 0 && asked.region === null) return ws;
  return narrowAsked(asked, callerResidency(ws, { region: null, countries: [] }), "this workspace's work");
}
