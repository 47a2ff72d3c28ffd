import type { Logger } from "@beta9/http";
import {
  Beta9Error,
  type GpuRequirement,
  type InferencePullRequest,
  type InferenceStatus,
  type PullProgress,
  type ReplicaView,
  type StoredModelView,
} from "@beta9/protocol";
import type { Repositories } from "@beta9/store";
import type { AgentLink, MachineFilter, MachineRegistry, ServingMachine } from "../machines/registry.ts";
import type { CarbonOf } from "../placement/carbon-rank.ts";
import { locationFits } from "../placement/constraints.ts";
import { callAgent } from "./agent-call.ts";
import { pullOnAgent } from "./agent-pull.ts";
import { placementNeeds } from "./deployment-spec.ts";
import { fitsNow, type PlacementNeeds, placeReplica } from "./placement.ts";
import type { Placements } from "./placements.ts";
import { type CopyFormat, PoolCopies, type PoolOffer } from "./pool-copies.ts";
import { PulledModels } from "./pulled-models.ts";
import { unwantedReplicas } from "./reconcile.ts";
import { servedWeights } from "./served-weights.ts";

/** A deployment as the scheduler needs it. */
export interface DeploymentSpec {
  name: string;
  workspaceId: string;
  source: string;
  sha256: string | null;
  engine: string | null;
  minReplicas: number;
  maxReplicas: number;
  idleMs: number;
  pool: string;
  gpu: GpuRequirement;
  minVramBytes: number | null;
  countries: string[];
  region: string | null;
  /** "low-carbon": placement ranks by expected carbon, not load. */
  prefer: "low-carbon" | null;
  contextSize: number | null;
  /** A llama.cpp type each machine converts the GGUF source to before serving it (null: as fetched). */
  quantize: string | null;
  /** With workspace and name, which deployment this is: one made again under the name is another. */
  createdAt: number;
}

/** What the router knows of a replica's traffic, so one is unloaded only when nothing uses it. */
export interface ReplicaTraffic {
  outstandingFor(machineId: string, model: string): number;
  /** No new request to `model` on the machine until the returned function is called. */
  retire(machineId: string, model: string): () => void;
}

/** How long an unload waits for the answers still under way on the replica (a stream may run long). */
const RETIRE_WAIT_MS = 30_000;

export interface ReplicaManagerDeps {
  registry: MachineRegistry;
  /** Where replicas were placed: only those take a deployment's requests. */
  placements: Placements;
  /** The operator's workspace: the sources of its deployments may name private addresses. */
  operatorWorkspaceId: string;
  /** Placements are read again at each sweep (other gateway replicas place too). */
  sharedStore?: boolean;
  log: Logger;
  traffic: ReplicaTraffic;
  /** Every deployment (all workspaces): the sweeper keeps minimums and unloads idle replicas. */
  deployments: () => Promise<DeploymentSpec[]>;
  /** Bound on pulling and loading a model for a request that waits (cold start). */
  coldStartTimeoutMs: number;
  /** The machine (by name) that converts deployments first for the pool (GatewayConfig.convertOn). */
  convertOn?: string | undefined;
  /** How often idle replicas and minimums are checked. */
  sweepEveryMs?: number;
  /** What is known of each machine's carbon, for deployments that prefer low carbon. */
  carbonOf?: CarbonOf;
  /** Where what the machines say of the models they pull is kept (the AI Act report reads it). */
  provenance?: Pick<Repositories["modelProvenance"], "note">;
}

/**
 * Replicas of deployments: loads one on a machine that fits when a request finds none (scale from
 * zero), keeps `min_replicas`, adds one up to `max_replicas` when the ones there are busy, and unloads
 * a replica idle longer than `idle_seconds` (down to the minimum). One load per deployment at a time.
 */
export class ReplicaManager {
  readonly #deps: ReplicaManagerDeps;
  /** Where each deployment's model was pulled: cold starts go there first and fetch nothing twice. */
  readonly pulled = new PulledModels();
  /** Conversions the machines hold: each deployment converted once in the pool, copied to the others. */
  readonly copies = new PoolCopies();
  /** What machines said of a converted deployment's model (--quantize, or a safetensors repository) when they pulled it. */
  readonly #weights = new Map<string, { source: string; stored: StoredModelView }>();
  readonly #loading = new Map<string, Promise<void>>();
  readonly #lastUsed = new Map<string, number>();
  readonly #waiting = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping = false;

  constructor(deps: ReplicaManagerDeps) {
    this.#deps = deps;
  }

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.#deps.sweepEveryMs ?? 5_000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /**
   * A machine pulled a deployment's model: later pulls there name its sha256, and what the machine
   * said of it (licence, architecture …) is kept for the report; a failed write is logged, never
   * the pull's failure.
   */
  notePulled(machineId: string, dep: DeploymentSpec, stored: StoredModelView | null): void {
    // A later pull names the source's bytes; a converted model's own sha256 is not the source's.
    this.pulled.note(
      machineId,
      dep.name,
      dep.source,
      stored?.converted_from?.sha256 ?? stored?.sha256 ?? null,
    );
    if (stored && (dep.quantize !== null || stored.converted_from))
      this.#weights.set(dep.name, { source: dep.source, stored });
    this.copies.note(machineId, dep, stored);
    const { provenance, log } = this.#deps;
    if (!provenance || !stored) return;
    const row = {
      workspace_id: dep.workspaceId,
      model: dep.name,
      machine_id: machineId,
      sha256: stored.sha256 ?? "",
      source: stored.source,
      format: stored.format,
      license: stored.license,
      license_source: stored.license_source ?? null,
      base_model: stored.base_model ?? null,
      architecture: stored.architecture,
      parameter_count: stored.parameter_count,
      quantization: stored.quantization,
      context_length: stored.context_length,
      deployment_created_at: dep.createdAt,
    };
    provenance.note(row, Date.now()).catch((err: unknown) => {
      log.error(
        { err, model: dep.name, machine_id: machineId },
        `could not record the provenance of ${dep.name}; the AI Act report will miss this pull`,
      );
    });
  }

  /** A request for `model` went to `machineId`: it is not idle. */
  touch(machineId: string, model: string): void {
    this.#lastUsed.set(key(machineId, model), Date.now());
  }

  /** The deployment's replicas that may take its requests now (see Placements.replicaOf). */
  serving(dep: DeploymentSpec): ServingMachine[] {
    return this.#deps.registry.serving(dep.name, this.#deps.placements.replicaOf(dep));
  }

  /**
   * Which machines serving `model` may take a request for it: the deployment's own replicas, or, for a
   * name no deployment has, machines that serve it by hand (never a deployment's replica).
   */
  allowFor(model: string, dep: DeploymentSpec | undefined): MachineFilter {
    return dep ? this.#deps.placements.replicaOf(dep) : this.#deps.placements.unplaced(model);
  }

  /**
   * The pull of `dep` to send `machineId`: the model, its source and the bytes it had there, for whom,
   * whether the operator gave the source, the type to convert to, and another machine's conversion to
   * copy. A deployment that converts is converted by one machine at a time: while another converts it,
   * this waits for that (until `until` is aborted or its deadline passes) and then offers its result.
   * With a conversion machine (--convert-on) that may take it, that machine converts first (unless
   * `until.converterTried`: the caller had it try). Call `done` once the pull has ended and its
   * answer is noted.
   */
  async pullFor(
    dep: DeploymentSpec,
    machineId: string,
    until: {
      signal?: AbortSignal | undefined;
      deadline?: number | undefined;
      converterTried?: boolean | undefined;
    } = {},
  ): Promise<{
    body: Omit<InferencePullRequest, "stream">;
    done: (stored?: StoredModelView | null) => void;
  }> {
    const body = this.#pullBody(dep, machineId);
    let converterTried = until.converterTried === true;
    let asked = false;
    for (;;) {
      const pool = this.copies.offer(dep, machineId, this.#connectedName);
      if (pool)
        return { body: { ...body, pool }, done: (stored) => this.#copied(dep, machineId, pool, stored) };
      if (!asked && this.copies.converts(dep) && !this.copies.held(dep)) {
        asked = true;
        if (await this.#askReplicas(dep, machineId, "gguf")) continue;
      }
      const converter = converterTried ? undefined : this.conversionMachine(dep, machineId);
      if (converter) {
        converterTried = true;
        // A caller out of time stops waiting, not the conversion: later placements copy its result.
        const run = (async () => {
          for await (const _ of this.convertOn(dep, converter, until.signal ?? new AbortController().signal));
        })().catch((err: unknown) => {
          if (!until.signal?.aborted)
            this.#deps.log.warn(
              { model: dep.name, machine_id: converter.id, err: (err as Error).message },
              `could not convert ${dep.name} on ${converter.name}; the machine placed converts it`,
            );
        });
        await endsWithin(run, until);
        if (until.signal?.aborted) throw until.signal.reason;
        continue;
      }
      const turn = this.copies.turn(dep, machineId);
      if ("release" in turn) return { body, done: turn.release };
      // Rather a conversion here than none before the caller's time is up.
      if (!(await endsWithin(turn.wait, until))) return { body, done: () => {} };
    }
  }

  /**
   * The pool's conversion machine (--convert-on) when it should convert `dep` before `machineId` pulls
   * it: the deployment converts and no machine holds its conversion yet, and that machine is connected,
   * is not `machineId`, and may hold the workspace's weights (its country fits the deployment's
   * countries or region, as placement would ask of a replica).
   */
  conversionMachine(dep: DeploymentSpec, machineId: string): { id: string; name: string } | undefined {
    const name = this.#deps.convertOn;
    if (!name || !this.copies.converts(dep) || this.copies.held(dep)) return undefined;
    const m = this.#deps.registry.views().find((v) => v.name === name);
    if (!m || m.id === machineId || !this.#deps.registry.link(m.id)?.request) return undefined;
    return locationFits(dep, m) ? { id: m.id, name: m.name } : undefined;
  }

  /**
   * Have `converter` make `dep`'s conversion for the pool (a pull there, never a replica), its
   * progress as it comes; then it holds the conversion the others copy. When another machine is
   * converting it already, this waits for that instead.
   */
  async *convertOn(
    dep: DeploymentSpec,
    converter: { id: string; name: string },
    signal: AbortSignal,
  ): AsyncGenerator<PullProgress> {
    const turn = this.copies.turn(dep, converter.id);
    if ("wait" in turn) {
      await endsWithin(turn.wait, { signal });
      return;
    }
    try {
      const link = this.#deps.registry.link(converter.id);
      if (!link) throw new Beta9Error("unavailable", `${converter.name} is not connected`);
      let stored: StoredModelView | null = null;
      for await (const p of pullOnAgent(converter.id, link, this.#pullBody(dep, converter.id), signal)) {
        if (p.status === "success") {
          stored = p.model ?? null;
          break;
        }
        yield p;
      }
      this.notePulled(converter.id, dep, stored);
    } finally {
      turn.release();
    }
  }

  /**
   * A pull of `dep` on `machineId` with no offer: the model, its source and the bytes it had there, for
   * whom, whether the operator gave the source, and the type it converts to.
   */
  #pullBody(dep: DeploymentSpec, machineId: string): Omit<InferencePullRequest, "stream" | "pool"> {
    const sha256 = dep.sha256 ?? this.pulled.sha256(machineId, dep);
    return {
      model: dep.name,
      source: dep.source,
      ...(sha256 ? { sha256 } : {}),
      owner: dep.workspaceId,
      source_trusted: dep.workspaceId === this.#deps.operatorWorkspaceId,
      ...(dep.quantize !== null ? { quantize: dep.quantize } : {}),
    };
  }

  /**
   * What the deployment's replicas on other machines hold, when this gateway does not know (it started
   * after they converted): each is asked, at most until one answers with a conversion. For a GGUF, the
   * deployment's pull there (it has the model: answered at once, nothing fetched); for a directory an
   * engine loads, its status (the served model's conversion). True when a holder was found.
   */
  async #askReplicas(dep: DeploymentSpec, machineId: string, format: CopyFormat): Promise<boolean> {
    for (const m of this.serving(dep)) {
      const link = this.#deps.registry.link(m.id);
      if (m.id === machineId || !link?.request) continue;
      try {
        if (format === "gguf") {
          const stored = await callAgent<StoredModelView>(link, {
            method: "POST",
            path: "/inference/pull",
            body: this.#pullBody(dep, m.id),
            timeoutMs: ASK_HOLDER_TIMEOUT_MS,
          });
          this.notePulled(m.id, dep, stored ?? null);
        } else {
          const status = await callAgent<InferenceStatus>(link, {
            method: "GET",
            path: "/inference/status",
            timeoutMs: ASK_HOLDER_TIMEOUT_MS,
          });
          this.copies.noteServed(
            m.id,
            dep,
            status.models.find((x) => x.name === dep.name),
          );
        }
      } catch (err) {
        this.#deps.log.debug(
          { model: dep.name, machine_id: m.id, err: (err as Error).message },
          "a replica could not say what it holds",
        );
        continue;
      }
      if (format === "gguf" ? this.copies.held(dep) : this.copies.heldAs(dep, format)) return true;
    }
    return false;
  }

  /** Whether a start of `dep` may convert to a directory: its replicas elsewhere serve it converted. */
  #mayConvertAtStart(dep: DeploymentSpec): boolean {
    const views = this.#deps.registry.views();
    return this.serving(dep).some((m) =>
      views
        .find((v) => v.id === m.id)
        ?.inference?.models.some((x) => x.name === dep.name && x.converted_to !== undefined),
    );
  }

  /** A connected machine's name, for an offer of what it holds; undefined when it is not connected here. */
  #connectedName = (id: string): string | undefined =>
    this.#deps.registry.link(id) ? (this.#deps.registry.get(id)?.name ?? id) : undefined;

  /**
   * A pull or start offered a copy that converted for itself instead (what it answered has no
   * `converted_on`): whoever sent it those bytes is not offered again.
   */
  #copied(
    dep: DeploymentSpec,
    machineId: string,
    pool: PoolOffer,
    stored: Pick<StoredModelView, "converted_from"> | null | undefined,
  ): void {
    if (!stored || stored.converted_from?.converted_on !== undefined) return;
    const holders = this.copies.unreliable(pool.ticket);
    if (holders.length > 0)
      this.#deps.log.warn(
        { model: dep.name, machine_id: machineId, holders, sha256: pool.sha256 },
        `${dep.name}: the copy sent to ${this.#deps.registry.get(machineId)?.name ?? machineId} was not what its holder claimed (or did not arrive); that holder is not offered again`,
      );
  }

  /** The weights a converted deployment's replica loads (served-weights.ts); null before a machine said. */
  #weightsOf(dep: DeploymentSpec): { bytes: number; what: string } | null {
    const seen = this.#weights.get(dep.name);
    return seen && seen.source === dep.source ? servedWeights(dep, seen.stored) : null;
  }

  /** Make sure at least one replica serves the deployment; waits (bounded) for a cold start. */
  async ensure(dep: DeploymentSpec): Promise<void> {
    if (this.serving(dep).length > 0) return;
    await this.#awaitReturning(dep);
    if (this.serving(dep).length > 0) return;
    this.#waiting.set(dep.name, (this.#waiting.get(dep.name) ?? 0) + 1);
    try {
      await this.#addReplica(dep);
    } finally {
      this.#waiting.set(dep.name, (this.#waiting.get(dep.name) ?? 1) - 1);
    }
  }

  /**
   * A gateway just restarted knows nothing of what its machines run until they are back: a request
   * then waits (bounded by the settling window and the cold-start timeout) for a machine serving the
   * model to return, or for every machine to be back before it places one. When no machine, back or
   * not, could take the deployment, it does not wait: placing fails at once with the reason.
   */
  async #awaitReturning(dep: DeploymentSpec): Promise<void> {
    const { registry } = this.#deps;
    if (!registry.settling()) return;
    const hopeful = registry
      .views()
      .map((v) =>
        registry.returning(v.id) && !v.cordoned && !v.draining ? { ...v, status: "READY" as const } : v,
      );
    if (!placeReplica(this.placementNeeds(dep), hopeful).ok) return;
    await registry.whileSettling(
      () => this.serving(dep).length > 0,
      Date.now() + this.#deps.coldStartTimeoutMs,
    );
  }

  /** Requests waiting in ensure(), by model (0 once a model's wait is over: a series, not a gap). */
  coldStartWaiting(): ReadonlyMap<string, number> {
    return this.#waiting;
  }

  /**
   * Each replica's model and state: the agent's (starting, ready, error), "draining" on a draining
   * machine, "unreachable" on one the gateway has lost, and "loading" while one is being placed.
   */
  replicaStates(): { model: string; state: string }[] {
    const out: { model: string; state: string }[] = [];
    this.#deps.registry.forEachServing((status, models) => {
      const lost = status === "OFFLINE" || status === "UNHEALTHY";
      for (const model of models) {
        const state = lost ? "unreachable" : status === "DRAINING" ? "draining" : model.state;
        out.push({ model: model.name, state });
      }
    });
    for (const name of this.#loading.keys()) out.push({ model: name, state: "loading" });
    return out;
  }

  /** Start one more replica in the background when every replica is this busy (and max allows). */
  scaleUp(dep: DeploymentSpec, busiest: number, threshold = 4): void {
    const replicas = this.serving(dep).length;
    if (busiest < threshold || replicas >= dep.maxReplicas || this.#loading.has(dep.name)) return;
    this.#addReplica(dep).catch((err: unknown) =>
      this.#deps.log.warn({ model: dep.name, err: (err as Error).message }, "could not add a replica"),
    );
  }

  #addReplica(dep: DeploymentSpec): Promise<void> {
    let p = this.#loading.get(dep.name);
    if (!p) {
      p = this.#load(dep).finally(() => this.#loading.delete(dep.name));
      this.#loading.set(dep.name, p);
    }
    return p;
  }

  async #load(dep: DeploymentSpec): Promise<void> {
    const { registry, log } = this.#deps;
    const placement = placeReplica(this.placementNeeds(dep), registry.views());
    if (!placement.ok) throw new Beta9Error("unavailable", `cannot place ${dep.name}: ${placement.reason}`);
    const deadline = Date.now() + this.#deps.coldStartTimeoutMs;
    const refusals: string[] = [];
    // A low-carbon deployment goes where carbon is lowest, even if the model must be fetched there.
    const order =
      dep.prefer === "low-carbon" ? placement.machines : this.pulled.preferring(placement.machines, dep);
    for (const machine of order) {
      const link = registry.link(machine.id);
      const left = deadline - Date.now();
      if (!link || left <= 0) continue;
      try {
        log.info({ model: dep.name, machine_id: machine.id }, `loading ${dep.name} on ${machine.name}`);
        const pull = await this.pullFor(dep, machine.id, { deadline });
        let stored: StoredModelView | undefined;
        try {
          stored = await callAgent<StoredModelView>(link, {
            method: "POST",
            path: "/inference/pull",
            body: pull.body,
            timeoutMs: Math.max(1_000, deadline - Date.now()),
          });
          this.notePulled(machine.id, dep, stored ?? null);
        } catch (err) {
          this.pulled.forget(machine.id, dep.name);
          throw err;
        } finally {
          pull.done(stored);
        }
        // Conversions for engines that take no GGUF, made by other machines: copied, not made again.
        let offers = this.copies.dirOffers(dep, machine.id, this.#connectedName);
        if (offers.length === 0 && this.#mayConvertAtStart(dep)) {
          for (const format of ["safetensors", "mlx"] as const)
            await this.#askReplicas(dep, machine.id, format);
          offers = this.copies.dirOffers(dep, machine.id, this.#connectedName);
        }
        const status = await callAgent<InferenceStatus>(link, {
          method: "POST",
          path: "/inference/start",
          body: {
            model: dep.name,
            ...(dep.engine ? { engine: dep.engine } : {}),
            ...(dep.contextSize ? { context_size: dep.contextSize } : {}),
            deployment: true,
            owner: dep.workspaceId,
            ...(offers.length > 0 ? { pool: offers } : {}),
          },
          timeoutMs: Math.max(1_000, deadline - Date.now()),
        });
        const served = status.models.find((m) => m.name === dep.name);
        this.copies.noteServed(machine.id, dep, served);
        for (const offer of offers)
          if (served?.converted_to === offer.format) this.#copied(dep, machine.id, offer, served.conversion);
        const why =
          machine === placement.machines[0]
            ? placement.why
            : `${placement.why}; placed on ${machine.name} after ${refusals.join("; ") || "the machines before it had not fetched the model"}`;
        await this.#deps.placements.place(
          machine.id,
          dep,
          `${why}; ${servedAs(dep, stored ?? null, status)}`,
        );
        registry.noteModels(machine.id, status.models);
        this.touch(machine.id, dep.name);
        log.info({ model: dep.name, machine_id: machine.id }, `${dep.name} is ready on ${machine.name}`);
        return;
      } catch (err) {
        const e = err as Beta9Error;
        refusals.push(`${machine.name}: ${e.message}`);
        log.warn(
          { model: dep.name, machine_id: machine.id, code: e.code },
          `could not load ${dep.name} on ${machine.name}`,
        );
      }
    }
    throw new Beta9Error(
      "unavailable",
      refusals.length > 0
        ? `no machine could load ${dep.name}: ${refusals.join("; ")}`
        : `loading ${dep.name} did not finish within ${Math.round(this.#deps.coldStartTimeoutMs / 1000)} s`,
    );
  }

  /** Keep minimums; unload replicas idle past their deployment's limit, never below the minimum. */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const { registry, log, placements } = this.#deps;
      const now = Date.now();
      if (this.#deps.sharedStore) await placements.load();
      const deployments = await this.#deps.deployments();
      const deployed = new Set(deployments.map((d) => d.name));
      // Started for a deployment that is gone, by any gateway (this one, before a restart, or a peer;
      // also on a machine back from a partition): the agents report which models those are.
      const removed = [...registry.deploymentModels()].filter((name) => !deployed.has(name));
      const unwanted = unwantedReplicas({
        deployments,
        removed,
        serving: (model) => registry.serving(model),
        replicas: (dep) => this.serving(dep),
        misplaced: (dep) => this.#misplaced(dep),
        lastUsed: (id, model) => this.#lastUsed.get(key(id, model)),
      });
      for (const u of unwanted) {
        const link = registry.link(u.machineId);
        if (link) await this.unload({ id: u.machineId, link }, u.model, u.why);
      }
      for (const dep of deployments) {
        const serving = this.serving(dep);
        if (serving.length < dep.minReplicas) {
          // Just restarted: the machines coming back may run it already.
          if (registry.settling(now)) continue;
          this.#addReplica(dep).catch((err: unknown) =>
            log.warn(
              { model: dep.name, err: (err as Error).message },
              "could not reach the minimum replicas",
            ),
          );
          continue;
        }
        let count = serving.length;
        for (const m of serving) {
          if (count <= dep.minReplicas) break;
          const last = this.#lastUsed.get(key(m.id, dep.name));
          if (last === undefined) {
            // Serving since before this gateway started: count idleness from now.
            this.#lastUsed.set(key(m.id, dep.name), now);
            continue;
          }
          if (now - last < dep.idleMs) continue;
          // A long answer began before the idle limit and is still going: the replica is in use.
          if (this.#deps.traffic.outstandingFor(m.id, dep.name) > 0) continue;
          count--;
          this.#lastUsed.delete(key(m.id, dep.name));
          await this.unload(m, dep.name, `idle for ${Math.round((now - last) / 1000)} s`);
        }
      }
    } finally {
      this.#sweeping = false;
    }
  }

  /** Unload `dep`'s replicas above its minimum now, each once the answers under way there finish. */
  async release(dep: DeploymentSpec, why: string): Promise<void> {
    for (const m of this.serving(dep).slice(dep.minReplicas)) {
      this.#lastUsed.delete(key(m.id, dep.name));
      await this.unload(m, dep.name, why);
    }
  }

  /** Unload `model` from a machine, once the answers under way there have finished. */
  async unload(m: { id: string; link: AgentLink }, model: string, why: string): Promise<void> {
    const { traffic } = this.#deps;
    // New requests go elsewhere (or wait for a cold start) from now; those under way finish first.
    const release = traffic.retire(m.id, model);
    try {
      const deadline = Date.now() + RETIRE_WAIT_MS;
      while (traffic.outstandingFor(m.id, model) > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      const status = await callAgent<InferenceStatus>(m.link, {
        method: "POST",
        path: "/inference/stop",
        body: { model },
        timeoutMs: 30_000,
      });
      this.#deps.registry.noteModels(m.id, status.models);
      await this.#deps.placements.forget(m.id, model);
      this.#deps.log.info({ model, machine_id: m.id }, `unloaded ${model}: ${why}`);
    } catch (err) {
      this.#deps.log.warn(
        { model, machine_id: m.id, err: (err as Error).message },
        `could not unload ${model}`,
      );
    } finally {
      release();
    }
  }

  /** What placing a replica of `dep` must satisfy; machines already holding one are not chosen again. */
  placementNeeds(dep: DeploymentSpec): PlacementNeeds {
    return {
      ...placementNeeds(dep),
      weights: this.#weightsOf(dep),
      placedOn: (id: string) => this.#deps.placements.isReplicaOf(id, dep),
      lowCarbon: dep.prefer === "low-carbon" ? this.#deps.carbonOf : undefined,
    };
  }

  /** Replicas the gateway placed for `dep` on machines that no longer satisfy its constraints. */
  #misplaced(dep: DeploymentSpec): ServingMachine[] {
    const { registry, placements } = this.#deps;
    return registry.serving(dep.name).filter((m) => {
      const facts = registry.facts(m.id);
      return facts !== undefined && placements.isReplicaOf(m.id, dep) && !fitsNow(dep, facts);
    });
  }

  /** What runs where, for `b9 model ps`. */
  replicas(names: ReadonlySet<string> | null, outstanding: (id: string) => number): ReplicaView[] {
    const out: ReplicaView[] = [];
    for (const m of this.#deps.registry.views()) {
      for (const model of m.inference?.models ?? []) {
        if (names && !names.has(model.name)) continue;
        const last = this.#lastUsed.get(key(m.id, model.name));
        out.push({
          deployment: model.name,
          machine_id: m.id,
          machine_name: m.name,
          state: model.state,
          engine: model.engine,
          memory_bytes: model.memory_bytes,
          outstanding: outstanding(m.id),
          last_request_at: last === undefined ? null : new Date(last).toISOString(),
          placed_because: this.#deps.placements.reason(m.id, model.name),
        });
      }
    }
    for (const name of this.#loading.keys()) {
      if (!names || names.has(name)) {
        out.push({
          deployment: name,
          machine_id: "",
          machine_name: "",
          state: "loading",
          engine: "",
          memory_bytes: null,
          outstanding: 0,
          placed_because: null,
          last_request_at: null,
        });
      }
    }
    return out;
  }
}

const key = (machineId: string, model: string) => `${machineId}\u0000${model}`;

/** "serves GGUF Q8_0 on builtin, quantized from Q4_1 by llama-quantize (…)", or "converted … from safetensors": for placed_because. */
export function servedAs(
  dep: DeploymentSpec,
  stored: StoredModelView | null,
  status: InferenceStatus,
): string {
  const served = status.models.find((m) => m.name === dep.name);
  const engine = served?.engine || dep.engine || "the machine's engine";
  const format = stored
    ? `${stored.format.toUpperCase()}${stored.quantization ? ` ${stored.quantization}` : ""}`
    : "the model";
  const chosen = dep.engine ? "the deployment names it" : "the machine's choice for that format";
  const from = stored?.converted_from;
  // A copy of another machine's conversion says where it was made, and that it was not made again.
  const where = from?.converted_on ?? "the machine";
  const copied = from?.converted_on
    ? `, copied from there through the gateway (sha256 checked) rather than converted again`
    : "";
  const made = !from
    ? ""
    : from.format === "safetensors"
      ? `, converted on ${where} from safetensors (${from.name}) to GGUF ${from.target} by ${from.converter.version}${copied}`
      : `, quantized on ${where} from ${from.quantization ?? from.format} by ${from.converter.tool} ${from.converter.version} as the deployment asks (quantize ${from.target})${copied}`;
  if (served?.converted_to) {
    const copiedFrom = served.conversion?.converted_from.converted_on;
    const how = copiedFrom
      ? `copied ${copiedFrom}'s conversion through the gateway (sha256 checked) rather than converting it again`
      : served.converted_to === "mlx"
        ? "dequantised it to float16 and had mlx_lm.convert quantise that to about its bits, once, and keeps it"
        : "dequantised it to float16 once and keeps it";
    return `serves ${format} on ${engine} as ${served.converted_to} (${chosen}; no engine there serves ${stored?.format ?? "the stored format"}, so the machine ${how})${made}`;
  }
  return `serves ${format} on ${engine} (${chosen})${made}`;
}

/** Whether `p` settles before `until`'s signal aborts or its deadline passes. */
async function endsWithin(
  p: Promise<void>,
  until: { signal?: AbortSignal | undefined; deadline?: number | undefined },
): Promise<boolean> {
  if (until.signal?.aborted) return false;
  let timer: NodeJS.Timeout | undefined;
  let onAbort = () => {};
  const stop = new Promise<false>((resolve) => {
    if (until.deadline !== undefined)
      timer = setTimeout(() => resolve(false), Math.max(0, until.deadline - Date.now()));
    onAbort = () => resolve(false);
    until.signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([p.then(() => true as const), stop]);
  } finally {
    clearTimeout(timer);
    until.signal?.removeEventListener("abort", onAbort);
  }
}

/** A replica asked what it holds answers at once: it has the model (or it is not worth waiting for). */
const ASK_HOLDER_TIMEOUT_MS = 30_000;
