/*
 * What runs, squared with what is wanted. The gateway's picture can be wrong for a while: a machine
 * cut off keeps running its replicas while the gateway places them elsewhere, and a deployment
 * removed meanwhile cannot be unloaded there. When the machine's heartbeats return they say what it
 * really runs, and this decides what has to go.
 */

export interface UnwantedReplica {
  machineId: string;
  model: string;
  why: string;
}

export function unwantedReplicas<D extends { name: string; maxReplicas: number }>(input: {
  deployments: readonly D[];
  /** Models a gateway started for a deployment that is gone. */
  removed: Iterable<string>;
  /** The machines serving a model now (connected and taking work). */
  serving: (model: string) => readonly { id: string }[];
  /** A deployment's own replicas (placed by a gateway, fitting it now); all that serve it, if not given. */
  replicas?: (dep: D) => readonly { id: string }[];
  /** A deployment's replicas on machines that no longer satisfy its constraints. */
  misplaced?: (dep: D) => readonly { id: string }[];
  lastUsed: (machineId: string, model: string) => number | undefined;
}): UnwantedReplica[] {
  const out: UnwantedReplica[] = [];
  for (const dep of input.deployments) {
    for (const m of input.misplaced?.(dep) ?? [])
      out.push({ machineId: m.id, model: dep.name, why: "the machine no longer satisfies the deployment" });
    const serving = input.replicas ? input.replicas(dep) : input.serving(dep.name);
    const extra = serving.length - dep.maxReplicas;
    if (extra <= 0) continue;
    // The replicas used last stay: one that was away has sat idle while the others served.
    const used = (id: string) => input.lastUsed(id, dep.name) ?? Number.NEGATIVE_INFINITY;
    const leastUsedFirst = [...serving].sort((a, b) => used(a.id) - used(b.id));
    for (const m of leastUsedFirst.slice(0, extra)) {
      out.push({
        machineId: m.id,
        model: dep.name,
        why: `${serving.length} replicas run and max_replicas is ${dep.maxReplicas}`,
      });
    }
  }
  for (const model of input.removed) {
    for (const m of input.serving(model))
      out.push({ machineId: m.id, model, why: "its deployment was removed" });
  }
  return out;
}
