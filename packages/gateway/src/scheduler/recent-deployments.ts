import type { DeploymentSpec } from "./replicas.ts";

type Lookup = (workspaceId: string, model: string) => Promise<DeploymentSpec | undefined>;

const MAX_ENTRIES = 10_000;

/**
 * Deployments as read a few seconds ago, for decisions that may lag that much (adding a replica to a
 * busy deployment): a request to a model that is being served costs no store query. Whether to
 * scale from zero is never decided from here; that reads the store.
 */
export class RecentDeployments {
  readonly #lookup: Lookup;
  readonly #ttlMs: number;
  readonly #seen = new Map<string, { spec: DeploymentSpec | undefined; readAt: number }>();

  constructor(lookup: Lookup, ttlMs = 5_000) {
    this.#lookup = lookup;
    this.#ttlMs = ttlMs;
  }

  async get(workspaceId: string, model: string): Promise<DeploymentSpec | undefined> {
    const key = `${workspaceId}\u0000${model}`;
    const now = Date.now();
    const seen = this.#seen.get(key);
    if (seen && now - seen.readAt < this.#ttlMs) return seen.spec;
    const spec = await this.#lookup(workspaceId, model);
    this.#seen.delete(key);
    if (this.#seen.size >= MAX_ENTRIES) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(key, { spec, readAt: now });
    return spec;
  }
}
