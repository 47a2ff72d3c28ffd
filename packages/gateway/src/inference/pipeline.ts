import type { Logger } from "@beta9/http";
import { REQUEST_ID_HEADER } from "@beta9/protocol";
import type { Caller } from "../auth/api-keys.ts";
import type { WorkspaceModels } from "../auth/model-access.ts";
import { type CallerResidency, narrowDeployment, residencyAllows } from "../auth/residency.ts";
import { limitCode, limitMessage } from "../limits/key-limits.ts";
import type { MachineFilter, MachineRegistry } from "../machines/registry.ts";
import { CLIENT_LEFT, type Metering, type RequestMeter } from "../metering/metering.ts";
import { estimateNeed } from "../metering/token-estimate.ts";
import { type AgentResponse, requestModel } from "../router/request.ts";
import type { Router } from "../router/router.ts";
import type { DeploymentSpec, ReplicaManager } from "../scheduler/replicas.ts";
import { InferenceError } from "./errors.ts";

/** How old a read of deployments may be for a request to a model being served. */
const RECENT_DEPLOYMENTS_MS = 5_000;
/** Time to a machine's response headers (a busy engine may take long to start answering). */
const HEADERS_TIMEOUT_MS = 300_000;

export interface InferenceDeps {
  router: Router;
  metering: Metering;
  replicas: ReplicaManager;
  /** Which models the caller's workspace may use (its cache is the one read of deployments per request). */
  models: WorkspaceModels;
  registry: MachineRegistry;
  log: Logger;
}

/** A model the caller may use: the name machines serve it by, and the caller's deployment of it. */
export interface FoundModel {
  name: string;
  deployment: DeploymentSpec | undefined;
  /** Which machines serving it may take the request (the deployment's own replicas). */
  allow: MachineFilter;
  /** One of those machines may take it now (else a deployment is loaded first). */
  serving: boolean;
}

/** The paths of the OpenAI-compatible API the agents speak. */
export type UpstreamPath = "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings";

/** One inference request, in the OpenAI terms machines speak, whichever API it came in by. */
export interface InferenceCall {
  caller: Caller;
  /** The model as the client named it (errors and usage rows of unknown names repeat it). */
  asked: string;
  /** The spellings it may have in the store, preferred first (Ollama's ":latest" either way). */
  names: readonly string[];
  path: UpstreamPath;
  /** The body for the machine; its `model` is set to the name the machine serves. */
  body: Record<string, unknown>;
  accept: string;
  /** The machine streams its answer (its tokens then count from the first one). */
  streamed: boolean;
  /** The client's: aborting it stops the request wherever it is. */
  signal: AbortSignal;
  /** The request's id (http/request-id.ts): sent to the machine, kept on its usage row. */
  requestId: string;
  log?: Pick<Logger, "warn"> | undefined;
}

/** A machine's answer, with the meter that records the request to its end. */
export interface Dispatched {
  response: AgentResponse;
  meter: RequestMeter;
  model: FoundModel;
}

/**
 * The one way an inference request reaches a machine, for the OpenAI and the Ollama API alike:
 * admitted under its key's limits, its model looked up for the caller's workspace, a deployment
 * with no replica loaded first (scale from zero), sent to a machine (another one when a machine
 * fails before answering), and metered from its arrival. The APIs translate around it.
 */
export class InferencePipeline {
  readonly models: WorkspaceModels;
  readonly #d: InferenceDeps;

  constructor(deps: InferenceDeps) {
    this.#d = deps;
    this.models = deps.models;
  }

  /**
   * The machine's answer (any status: the API reads it). Every refusal and failure is an
   * InferenceError, its request already metered with the status it will be answered with.
   */
  async dispatch(call: InferenceCall): Promise<Dispatched> {
    const { caller } = call;
    // Under the name a machine serves it by, when one does (the model is not looked up yet).
    const meter = this.#d.metering.start(
      caller,
      call.names.find((n) => this.#d.registry.serving(n).length > 0) ?? call.asked,
      call.requestId,
    );
    try {
      if (caller.auditContent) meter.captureContent(call.body);
      const admission = this.#d.metering.admit(caller, meter, estimateNeed(call.body, call.path));
      if (!admission.ok) {
        throw new InferenceError("rate_limited", limitMessage(admission), {
          model: call.asked,
          code: limitCode(admission),
          retryAfterS: admission.retryAfterS,
        });
      }
      const model = await this.find(caller, call.asked, call.names);
      meter.known();
      await this.warm(model);
      if (call.streamed) meter.streamed();
      const response = await this.#send(call, model, meter);
      meter.machine(response.machineId);
      const dep = model.deployment;
      meter.modelSha256(
        dep ? (dep.sha256 ?? this.#d.replicas.pulled.sha256(response.machineId, dep) ?? null) : null,
      );
      return { response, meter, model };
    } catch (err) {
      meter.finish(err instanceof InferenceError ? err.status : call.signal.aborted ? CLIENT_LEFT : 500);
      throw err;
    }
  }

  /** The model `names` mean in the caller's workspace; model_not_found when it has none. */
  async find(caller: Caller, asked: string, names: readonly string[]): Promise<FoundModel> {
    // With a replica serving, deployments read seconds ago will do; scaling from zero reads the store.
    const anyServing = names.some((n) => this.#d.router.pick(n) !== undefined);
    let found = await this.#lookup(caller, names, anyServing ? RECENT_DEPLOYMENTS_MS : 0);
    // None of the machines serving it may take it: whether to load one is decided on the store's word.
    if (found && !found.serving && anyServing) found = await this.#lookup(caller, names, 0);
    if (!found) throw await this.notFound(caller, asked);
    // Served by hand only outside the caller's countries: refused, never served there (nothing to load).
    if (!found.deployment && !found.serving && anyServing && caller.residency.countries)
      throw residencyRefused(asked, caller.residency, "it is served only on machines outside them");
    return found;
  }

  /** Scale from zero: a deployed model with no replica now is loaded first (bounded wait). */
  async warm(model: FoundModel): Promise<void> {
    if (!model.deployment || model.serving) return;
    try {
      await this.#d.replicas.ensure(model.deployment);
    } catch (err) {
      throw new InferenceError("unavailable", (err as Error).message, { model: model.name, retryAfterS: 10 });
    }
  }

  /** Unload a deployment's replicas above its minimum now (Ollama's `keep_alive: 0`). */
  async release(model: FoundModel): Promise<void> {
    if (model.deployment) await this.#d.replicas.release(model.deployment, "asked to unload (keep_alive 0)");
  }

  /** model_not_found, naming the models the caller's workspace has. */
  async notFound(caller: Caller, asked: string): Promise<InferenceError> {
    return new InferenceError("model_not_found", `no model ${asked} in this workspace`, {
      model: asked,
      known: await this.models.names(caller),
    });
  }

  async #lookup(caller: Caller, names: readonly string[], maxAgeMs: number): Promise<FoundModel | undefined> {
    const access = await this.models.access(caller, names, { maxAgeMs });
    if (access.kind === "none") return undefined;
    const deployment =
      access.kind === "deployed" ? narrowDeployment(access.deployment, caller.residency) : undefined;
    if (deployment === null)
      throw residencyRefused(access.name, caller.residency, "its deployment may run only outside them");
    const placed = this.#d.replicas.allowFor(access.name, deployment);
    // Checked per request on the machine's operator-set country, whatever placed the model there.
    const allow: MachineFilter = (m) => placed(m) && residencyAllows(caller.residency, m.country);
    const serving = this.#d.router.pick(access.name, undefined, allow) !== undefined;
    return { name: access.name, deployment, allow, serving };
  }

  async #send(call: InferenceCall, model: FoundModel, meter: RequestMeter): Promise<AgentResponse> {
    const { router, replicas } = this.#d;
    const { name, deployment } = model;
    const result = await requestModel(
      router,
      name,
      {
        path: call.path,
        body: JSON.stringify({ ...call.body, model: name }),
        // The agent logs with it and hands it to its engine: one id from the client to the engine.
        headers: {
          "content-type": "application/json",
          accept: call.accept,
          [REQUEST_ID_HEADER]: call.requestId,
        },
        headersTimeoutMs: HEADERS_TIMEOUT_MS,
        signal: call.signal,
      },
      {
        allow: model.allow,
        place: deployment ? () => replicas.ensure(deployment) : undefined,
        onAttempt: (machineId) => {
          meter.sent();
          replicas.touch(machineId, name);
          if (deployment) replicas.scaleUp(deployment, router.outstanding(machineId));
        },
        onRetry: (machineId, err) =>
          (call.log ?? this.#d.log).warn(
            { machine_id: machineId, model: name, err: err.message },
            "machine failed before answering; trying another",
          ),
      },
    );
    if (result.kind === "answered") return result.response;
    if (call.signal.aborted) {
      throw new InferenceError("client_left", "the client went away before a machine answered", {
        model: call.asked,
      });
    }
    if (result.kind === "not_served") throw await this.notFound(call.caller, call.asked);
    throw new InferenceError(
      "unavailable",
      `every machine serving ${call.asked} failed to answer (${result.error.message}); retry shortly`,
      { model: call.asked, retryAfterS: 2 },
    );
  }
}

function residencyRefused(model: string, r: CallerResidency, why: string): InferenceError {
  return new InferenceError(
    "residency",
    `${model} is not served here: this key's work may run only in ${r.text}, and ${why}; ` +
      "ask the operator to serve it on a machine there (b9 machine set ID --country CC sets a machine's country)",
    { model, code: "residency" },
  );
}
