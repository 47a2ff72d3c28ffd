import type { MachineRegistry, ServingMachine } from "../machines/registry.ts";

/**
 * Picks the machine for a request: among those serving the model ready now (draining ones only while
 * no other serves it), the one with the fewest requests outstanding from this gateway (ties broken at
 * random, so equal machines share the load).
 */
export class Router {
  readonly #registry: MachineRegistry;
  readonly #outstanding = new Map<string, number>();

  constructor(registry: MachineRegistry) {
    this.#registry = registry;
  }

  pick(model: string, exclude: ReadonlySet<string> = new Set()): ServingMachine | undefined {
    let best: ServingMachine | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (const m of this.#registry.routable(model)) {
      if (exclude.has(m.id)) continue;
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

  begin(id: string): void {
    this.#outstanding.set(id, (this.#outstanding.get(id) ?? 0) + 1);
  }

  end(id: string): void {
    const n = (this.#outstanding.get(id) ?? 1) - 1;
    if (n <= 0) this.#outstanding.delete(id);
    else this.#outstanding.set(id, n);
  }

  outstanding(id: string): number {
    return this.#outstanding.get(id) ?? 0;
  }
}
