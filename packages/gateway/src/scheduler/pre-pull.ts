import type { Logger } from "@beta9/http";
import { Beta9Error, type DeploymentPullEvent, type StoredModelView } from "@beta9/protocol";
import type { MachineRegistry } from "../machines/registry.ts";
import { pullOnAgent } from "./agent-pull.ts";
import { placeReplica } from "./placement.ts";
import type { PulledModels } from "./pulled-models.ts";
import type { DeploymentSpec, ReplicaManager } from "./replicas.ts";

export interface PrePullDeps {
  registry: MachineRegistry;
  pulled: PulledModels;
  log: Logger;
  /** A deployment's own replicas, and what its pulls tell the agents. */
  replicas: Pick<
    ReplicaManager,
    "serving" | "pullFor" | "placementNeeds" | "notePulled" | "copies" | "conversionMachine" | "convertOn"
  >;
}

/** Machines tried beyond those needed, when some fail: a source that fails everywhere is not tried on all. */
const SPARE_TRIES = 2;

/**
 * Put a deployment's model on the machines that will serve it, without loading it: those serving it
 * already need nothing; otherwise the machines placement picks for max(1, min_replicas) replicas pull
 * it into their stores, the next machine that fits taking the place of one that fails. Yields the
 * agents' progress, tagged with the machine, and ends with "success". Errors before anything is pulled
 * (no machine fits) are thrown before the first event; a failure after is thrown after its events.
 * Aborting `signal` stops the pulls on the machines.
 */
export async function* prePull(
  deps: PrePullDeps,
  dep: DeploymentSpec,
  signal: AbortSignal,
): AsyncGenerator<DeploymentPullEvent> {
  const { registry, pulled, log, replicas } = deps;
  const want = Math.max(1, dep.minReplicas);
  const serving = replicas.serving(dep).slice(0, want);
  const done: { id: string; name: string }[] = serving.map((m) => ({
    id: m.id,
    name: nameOf(registry, m.id),
  }));
  let candidates: { id: string; name: string }[] = [];
  if (done.length < want) {
    const placement = placeReplica(replicas.placementNeeds(dep), registry.views());
    if (!placement.ok) {
      if (done.length === 0)
        throw new Beta9Error("unavailable", `cannot place ${dep.name}: ${placement.reason}`);
    } else {
      candidates = pulled.preferring(placement.machines, dep);
    }
  }
  for (const m of done) yield { status: `already on ${m.name}`, machine_id: m.id, machine_name: m.name };

  let model: StoredModelView | null = null;
  const failures: Beta9Error[] = [];
  let tries = want - done.length + SPARE_TRIES;
  // A machine that cannot convert (no converter installed) is asked again once another has converted:
  // it can copy that conversion.
  const queue = [...candidates];
  const copyLater = new Map<string, Beta9Error>();
  for (let machine = queue.shift(); machine; machine = queue.shift()) {
    if (done.length >= want) break;
    const again = copyLater.get(machine.id);
    if (!again && tries-- <= 0) continue;
    if (again && !replicas.copies.held(dep)) {
      failures.push(again);
      continue;
    }
    const link = registry.link(machine.id);
    if (!link) continue;
    const where = { machine_id: machine.id, machine_name: machine.name };
    yield { status: `pulling on ${machine.name}`, ...where };
    log.info({ model: dep.name, machine_id: machine.id }, `pulling ${dep.name} on ${machine.name}`);
    // The pool's conversion machine (--convert-on) converts first, its progress shown as it comes.
    const conversion = replicas.conversionMachine(dep, machine.id);
    if (conversion) {
      const there = { machine_id: conversion.id, machine_name: conversion.name };
      yield {
        status: `converting ${dep.name} on ${conversion.name}, the pool's conversion machine`,
        ...there,
      };
      try {
        for await (const p of replicas.convertOn(dep, conversion, signal)) yield { ...p, ...there };
      } catch (err) {
        if (signal.aborted) throw err;
        const why = `could not convert on ${conversion.name}: ${(err as Error).message}; ${machine.name} converts it`;
        log.warn({ model: dep.name, machine_id: conversion.id }, why);
        yield { status: why, ...there };
      }
    }
    const converter = replicas.copies.convertingElsewhere(dep, machine.id);
    if (converter)
      yield {
        status: `waiting for ${nameOf(registry, converter)} to convert ${dep.name}, to copy that`,
        ...where,
      };
    const pull = await replicas.pullFor(dep, machine.id, {
      signal,
      converterTried: conversion !== undefined,
    });
    let pulledHere: StoredModelView | null = null;
    try {
      for await (const p of pullOnAgent(machine.id, link, pull.body, signal)) {
        if (p.status === "success") {
          model = pulledHere = p.model ?? null;
          break;
        }
        yield { ...p, ...where };
      }
      replicas.notePulled(machine.id, dep, model);
      done.push({ id: machine.id, name: machine.name });
      log.info({ model: dep.name, machine_id: machine.id }, `pulled ${dep.name} on ${machine.name}`);
    } catch (err) {
      if (signal.aborted) throw err;
      const e = err instanceof Beta9Error ? err : new Beta9Error("unavailable", (err as Error).message);
      // What it remembered may be what failed (the bytes changed at the source): ask afresh next time.
      pulled.forget(machine.id, dep.name);
      if (e.code === "converter_unavailable" && !again && replicas.copies.converts(dep)) {
        copyLater.set(machine.id, e);
        queue.push(machine);
        yield {
          status: `${machine.name} cannot convert ${dep.name}; it will copy another machine's conversion`,
          ...where,
        };
        continue;
      }
      failures.push(e);
      log.warn(
        { model: dep.name, machine_id: machine.id, code: e.code },
        `could not pull ${dep.name} on ${machine.name}`,
      );
      yield { status: `could not pull on ${machine.name}: ${e.message}`, ...where };
    } finally {
      pull.done(pulledHere);
    }
  }
  if (done.length === 0) {
    if (failures.length === 0)
      throw new Beta9Error("unavailable", `no machine that fits ${dep.name} is connected now; retry shortly`);
    // One cause everywhere (a bad source, say) keeps its own code.
    const code = failures.every((f) => f.code === failures[0]!.code) ? failures[0]!.code : "unavailable";
    throw new Beta9Error(
      code,
      failures.length === 1
        ? failures[0]!.message
        : `no machine could pull ${dep.name}: ${failures.map((f) => f.message).join("; ")}`,
    );
  }
  yield { status: "success", model, machines: done };
}

function nameOf(registry: MachineRegistry, id: string): string {
  return registry.get(id)?.name ?? id;
}
