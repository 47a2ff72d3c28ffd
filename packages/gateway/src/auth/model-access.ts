import type { Deployment, Store } from "@beta9/store";
import type { MachineRegistry } from "../machines/registry.ts";
import { deploymentSpec } from "../scheduler/deployment-spec.ts";
import type { DeploymentSpec } from "../scheduler/replicas.ts";
import { type CallerResidency, residencyAllows } from "./residency.ts";

/** Names whose deployments are remembered between store reads. */
const MAX_REMEMBERED = 10_000;

/** Who asks: a workspace, and whether it is the operator's (which runs the pool). */
export interface ModelCaller {
  workspaceId: string;
  operator: boolean;
  /** Where its work may run: a model served by hand only elsewhere is not listed for it. */
  residency?: CallerResidency | undefined;
}

/** What a workspace's caller gets for a model name. */
export type ModelAccess =
  /** The workspace's own deployment (running or scaled to zero). */
  | { kind: "deployed"; name: string; deployment: DeploymentSpec }
  /** Served by a machine by hand, with no deployment behind it in any workspace (the operator's only). */
  | { kind: "shared"; name: string }
  | { kind: "none" };

/** The models a workspace may call, for listings. */
export interface WorkspaceModelList {
  deployed: Deployment[];
  /** Names served now without a deployment in any workspace. */
  shared: string[];
}

/**
 * Which models a workspace may call. Its own deployments, whether running or scaled to zero. A model
 * a machine serves that no workspace deployed (its owner started it on the agent by hand) belongs to
 * that machine's owner and the pool's operator: only the operator's workspace may call it through the
 * gateway, since nothing but the machine's word stands behind it. A model that only other workspaces
 * deployed does not exist for this one: not listed, and 404 when asked for, even while a machine serves it.
 */
export class WorkspaceModels {
  readonly #store: Store;
  readonly #registry: MachineRegistry;
  readonly #read = new Map<string, { rows: Deployment[]; readAt: number }>();

  constructor(store: Store, registry: MachineRegistry) {
    this.#store = store;
    this.#registry = registry;
  }

  /**
   * What `names` (one name, or the spellings it may have, preferred first) mean for this workspace.
   * `maxAgeMs`: deployments read that recently will do (a request to a model being served then costs
   * no store query); 0 reads the store, as deciding to scale from zero must.
   */
  async access(
    caller: ModelCaller,
    names: readonly string[],
    opts: { maxAgeMs?: number } = {},
  ): Promise<ModelAccess> {
    const rows = await this.#named(names, opts.maxAgeMs ?? 0);
    for (const name of names) {
      const mine = rows.find((r) => r.workspace_id === caller.workspaceId && r.name === name);
      if (mine) return { kind: "deployed", name, deployment: deploymentSpec(mine) };
    }
    if (!caller.operator) return { kind: "none" };
    for (const name of names) {
      if (!rows.some((r) => r.name === name) && this.#registry.serving(name).length > 0)
        return { kind: "shared", name };
    }
    return { kind: "none" };
  }

  async #named(names: readonly string[], maxAgeMs: number): Promise<Deployment[]> {
    const key = names.join("\u0000");
    const now = Date.now();
    const seen = this.#read.get(key);
    if (seen && now - seen.readAt < maxAgeMs) return seen.rows;
    const rows = await this.#store.deployments.named(names);
    this.#read.delete(key);
    if (this.#read.size >= MAX_REMEMBERED) this.#read.delete(this.#read.keys().next().value!);
    this.#read.set(key, { rows, readAt: now });
    return rows;
  }

  async list(caller: ModelCaller): Promise<WorkspaceModelList> {
    const all = await this.#store.deployments.listAll();
    const deployedAnywhere = new Set(all.map((d) => d.name));
    return {
      deployed: all.filter((d) => d.workspace_id === caller.workspaceId),
      // Served anywhere: a model served only on a peer replica's machines is forwarded there.
      shared: caller.operator
        ? [...this.#registry.servedModels({ peers: true })]
            .filter(([n, ids]) => !deployedAnywhere.has(n) && ids.some((id) => this.#servesFor(caller, id)))
            .map(([n]) => n)
            .sort()
        : [],
    };
  }

  /** Whether machine `id` may take the caller's work (its operator-set country; unknown here: no). */
  #servesFor(caller: ModelCaller, id: string): boolean {
    return residencyAllows(caller.residency, this.#registry.get(id)?.country ?? null);
  }

  /** Every name the workspace may call, sorted (for listings and "not found" hints). */
  async names(caller: ModelCaller): Promise<string[]> {
    const { deployed, shared } = await this.list(caller);
    return [...new Set([...deployed.map((d) => d.name), ...shared])].sort();
  }
}
