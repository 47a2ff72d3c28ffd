import type { ReplicaPlacement, Store } from "@beta9/store";
import type { MachineFilter } from "../machines/registry.ts";
import { fitsNow } from "./placement.ts";
import type { DeploymentSpec } from "./replicas.ts";

/**
 * Where the gateway placed each deployment's replicas. A machine's heartbeat may list any model under
 * any name; only this record makes it a deployment's replica. Kept in memory for routing and in the
 * store, so a restarted gateway (or another replica, once an agent moves to it) knows it too.
 */
export class Placements {
  readonly #store: Store;
  /** machine id → model → the deployment it was placed for. */
  #byMachine = new Map<string, Map<string, ReplicaPlacement>>();

  constructor(store: Store) {
    this.#store = store;
  }

  /** Read every placement from the store (at start, and now and then where replicas share it). */
  async load(): Promise<void> {
    const next = new Map<string, Map<string, ReplicaPlacement>>();
    for (const row of await this.#store.placements.list()) add(next, row);
    this.#byMachine = next;
  }

  /** Record that `dep`'s replica runs on the machine, and why placement chose it (`because`). */
  async place(machineId: string, dep: DeploymentSpec, because: string | null): Promise<void> {
    const row: ReplicaPlacement = {
      machine_id: machineId,
      model: dep.name,
      workspace_id: dep.workspaceId,
      deployment_created_at: dep.createdAt,
      placed_at: Date.now(),
      reason: because,
    };
    await this.#store.placements.put(row);
    add(this.#byMachine, row);
  }

  async forget(machineId: string, model: string): Promise<void> {
    this.#byMachine.get(machineId)?.delete(model);
    await this.#store.placements.remove(machineId, model);
  }

  async forgetMachine(machineId: string): Promise<void> {
    this.#byMachine.delete(machineId);
    await this.#store.placements.removeMachine(machineId);
  }

  /** Whether the gateway placed `dep` (this very deployment, not an earlier one of its name) there. */
  isReplicaOf(machineId: string, dep: DeploymentSpec): boolean {
    const p = this.#byMachine.get(machineId)?.get(dep.name);
    return p !== undefined && p.workspace_id === dep.workspaceId && p.deployment_created_at === dep.createdAt;
  }

  /** Why placement chose the machine for the replica named `model` there, when it was recorded. */
  reason(machineId: string, model: string): string | null {
    return this.#byMachine.get(machineId)?.get(model)?.reason ?? null;
  }

  /** Whether any deployment's replica was placed under this name there. */
  placed(machineId: string, model: string): boolean {
    return this.#byMachine.get(machineId)?.has(model) ?? false;
  }

  /**
   * The machines a deployment's request may go to: those where the gateway placed it and that satisfy
   * its constraints now (pool, GPU, country or region), not only when it was placed.
   */
  replicaOf(dep: DeploymentSpec): MachineFilter {
    return (m) => this.isReplicaOf(m.id, dep) && fitsNow(dep, m);
  }

  /** For a name no deployment has: machines that serve it by hand, never another deployment's replica. */
  unplaced(model: string): MachineFilter {
    return (m) => !this.placed(m.id, model);
  }
}

function add(byMachine: Map<string, Map<string, ReplicaPlacement>>, row: ReplicaPlacement): void {
  const models = byMachine.get(row.machine_id) ?? new Map<string, ReplicaPlacement>();
  models.set(row.model, row);
  byMachine.set(row.machine_id, models);
}
