import type { MachineFilter, MachineRegistry, ServingMachine } from "../machines/registry.ts";

/**
 * Picks the machine for a request: among those serving the model ready now (draining ones only while
 * no other serves it, retiring replicas never), the one with the fewest requests outstanding from
 * this gateway (ties broken at random, so equal machines share the load).
 */
export class Router {
  readonly #registry: MachineRegistry;
  readonly #outstanding = new Map<string, number>();
  /** The same, per replica (machine and model): a replica is unloaded only once its own are done. */
  readonly #byReplica = new Map<string, number>();
  /** Replicas about to be unloaded: no new request goes to them. */
  readonly #retiring = new Set<string>();

  constructor(registry: MachineRegistry) {
    this.#registry = registry;
  }

  /** `allow`: only machines the scheduler lets take this request (a deployment's own replicas). */
  pick(
    model: string,
    exclude: ReadonlySet<string> = new Set(),
    allow?: MachineFilter,
  ): ServingMachine | undefined {
    let best: ServingMachine | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (const m of this.#registry.routable(model, allow)) {
      if (exclude.has(m.id) || this.#retiring.has(replicaKey(m.id, model))) continue;
      const load = this.#outstanding.get(m.id) ?? 0;
      if (load < bestLoad) {
        best = m;
        bestLoad = load;
        ties = 1;
      } else if (load === bestLoad && Math.random() * ++ties < 1) {
        best = m;
      }
    }
    return best;
  }

  begin(id: string, model: string): void {
    bump(this.#outstanding, id, 1);
    bump(this.#byReplica, replicaKey(id, model), 1);
  }

  end(id: string, model: string): void {
    bump(this.#outstanding, id, -1);
    bump(this.#byReplica, replicaKey(id, model), -1);
  }

  /** Requests in flight from this gateway to machine `id` (all its models). */
  outstanding(id: string): number {
    return this.#outstanding.get(id) ?? 0;
  }

  /** Requests in flight from this gateway, all machines. */
  inFlight(): number {
    let n = 0;
    for (const v of this.#outstanding.values()) n += v;
    return n;
  }

  /** Requests in flight to `model` on machine `id`. */
  outstandingFor(id: string, model: string): number {
    return this.#byReplica.get(replicaKey(id, model)) ?? 0;
  }

  /** Machine `id` answered that it no longer serves `model`: route as if its heartbeat had said so. */
  notServing(id: string, model: string): void {
    const models = this.#registry.views().find((v) => v.id === id)?.inference?.models;
    if (models)
      this.#registry.noteModels(
        id,
        models.filter((m) => m.name !== model),
      );
  }

  /** Send no new request to `model` on `id` until the returned function is called. */
  retire(id: string, model: string): () => void {
    const k = replicaKey(id, model);
    this.#retiring.add(k);
    return () => this.#retiring.delete(k);
  }
}

function replicaKey(id: string, model: string): string {
  return `${id}\u0000${model}`;
}

function bump(counts: Map<string, number>, k: string, by: number): void {
  const n = (counts.get(k) ?? 0) + by;
  if (n <= 0) counts.delete(k);
  else counts.set(k, n);
}
