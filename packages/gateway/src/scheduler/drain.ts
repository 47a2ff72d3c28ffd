import type { Logger } from "@beta9/http";
import type { AgentLink, MachineRegistry, ServingMachine } from "../machines/registry.ts";
import type { DeploymentSpec } from "./replicas.ts";

export interface DrainDeps {
  registry: MachineRegistry;
  log: Logger;
  /** Requests this gateway has sent to a machine that have not ended yet. */
  inFlight: (machineId: string) => number;
  deployments: () => Promise<DeploymentSpec[]>;
  /** A deployment's own replicas taking work now (those a machine only claims do not count). */
  replicas: (dep: DeploymentSpec) => ServingMachine[];
  /** Place the replicas deployments' minimums need, on machines that are not draining. */
  keepMinimums: () => Promise<void>;
  /** Unload a model from a machine (the replica manager's way, so it is done one way everywhere). */
  unload: (m: { id: string; link: AgentLink }, model: string, why: string) => Promise<void>;
  /** How often draining machines are looked at (1 s unless given). */
  everyMs?: number;
}

/**
 * Empties draining machines. A draining machine takes no new work (the router and placement skip
 * it), so its replicas are replaced elsewhere at once where a deployment's minimum needs them; its
 * models are unloaded only once nothing is in flight there and each minimum runs on other machines,
 * so the replicas ready never drop below a minimum. A machine with nothing loaded is DRAINED.
 */
export class Drains {
  readonly #deps: DrainDeps;
  /** What each machine's drain still waits for, in words (for `b9 machine show`). */
  readonly #waiting = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(deps: DrainDeps) {
    this.#deps = deps;
  }

  start(): void {
    this.#timer = setInterval(() => void this.check(), this.#deps.everyMs ?? 1_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  waitingFor(machineId: string): string | undefined {
    return this.#waiting.get(machineId);
  }

  /** Look at every draining machine once: place what minimums need, unload what may go. */
  async check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      await this.#check();
    } catch (err) {
      this.#deps.log.warn({ err: (err as Error).message }, "could not check the machines being drained");
    } finally {
      this.#checking = false;
    }
  }

  async #check(): Promise<void> {
    const { registry, log } = this.#deps;
    const machines = registry.draining();
    const seen = new Set(machines.map((m) => m.id));
    for (const id of this.#waiting.keys()) if (!seen.has(id)) this.#waiting.delete(id);
    if (machines.every((m) => m.models.length === 0)) {
      for (const m of machines) this.#waiting.delete(m.id);
      return;
    }
    const deployments = new Map((await this.#deps.deployments()).map((d) => [d.name, d]));
    const short = (model: string) => {
      const dep = deployments.get(model);
      return dep !== undefined && this.#deps.replicas(dep).length < dep.minReplicas;
    };
    let placeMore = false;
    for (const m of machines) {
      if (m.models.length === 0) {
        this.#waiting.delete(m.id);
        continue;
      }
      const waits: string[] = [];
      const inFlight = this.#deps.inFlight(m.id);
      if (inFlight > 0) waits.push(`${inFlight} request${inFlight === 1 ? "" : "s"} in flight`);
      const needed = m.models.filter(short);
      if (needed.length > 0) {
        placeMore = true;
        waits.push(`a replica of ${needed.join(", ")} ready on another machine (min_replicas)`);
      }
      if (waits.length > 0) {
        this.#waiting.set(m.id, waits.join("; "));
        continue;
      }
      this.#waiting.set(m.id, `unloading ${m.models.join(", ")}`);
      for (const model of m.models) await this.#deps.unload(m, model, `${m.name} is drained`);
      if (registry.status(m.id) === "DRAINED") {
        this.#waiting.delete(m.id);
        log.info({ machine_id: m.id }, `machine ${m.name} is drained`);
      }
    }
    if (placeMore) {
      void this.#deps
        .keepMinimums()
        .catch((err: unknown) => log.warn({ err }, "could not place replicas for a drain"));
    }
  }
}
