/**
 * Which machines have pulled which deployment's model, from which source, with the bytes' sha256.
 * A later pull of the same source on that machine names the sha256, so the agent finds the bytes it
 * has instead of fetching them again; and a cold start prefers a machine that has them (a pre-pull
 * pays off). Kept in memory: after a gateway restart each machine pulls once more.
 */
export class PulledModels {
  readonly #pulled = new Map<string, { source: string; sha256: string | null }>();

  note(machineId: string, model: string, source: string, sha256: string | null): void {
    this.#pulled.set(key(machineId, model), { source, sha256 });
  }

  forget(machineId: string, model: string): void {
    this.#pulled.delete(key(machineId, model));
  }

  has(machineId: string, dep: { name: string; source: string }): boolean {
    return this.#pulled.get(key(machineId, dep.name))?.source === dep.source;
  }

  /** The sha256 this machine found for this source (undefined when it has not pulled it). */
  sha256(machineId: string, dep: { name: string; source: string }): string | undefined {
    const p = this.#pulled.get(key(machineId, dep.name));
    return p?.source === dep.source ? (p.sha256 ?? undefined) : undefined;
  }

  /** Machines that have the model first, the order otherwise kept. */
  preferring<M extends { id: string }>(machines: readonly M[], dep: { name: string; source: string }): M[] {
    return [...machines.filter((m) => this.has(m.id, dep)), ...machines.filter((m) => !this.has(m.id, dep))];
  }
}

const key = (machineId: string, model: string) => `${machineId}\u0000${model}`;
