import {
  AI_GENERATED_HEADER,
  BETA9_VERSION,
  DeploymentName,
  type DeploymentPullEvent,
} from "@beta9/protocol";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { Compile } from "typebox/compile";
import type { Caller } from "../../auth/api-keys.ts";
import { type Footprint, footprintField, footprintHeaders } from "../../carbon/footprint.ts";
import type { GatewayContext } from "../../context.ts";
import { createDeployment } from "../../deployments/create.ts";
import { type ClientGone, clientGone, tapFirst } from "../../http/client-gone.ts";
import type { Dispatched, FoundModel, InferencePipeline, UpstreamPath } from "../../inference/pipeline.ts";
import { BODY_LIMITS, type BodyBudget, callerOf, inferenceBody } from "../../limits/request-body.ts";
import { tokenUsage } from "../../metering/answer-usage.ts";
import { CLIENT_LEFT, type RequestMeter } from "../../metering/metering.ts";
import type { AgentResponse } from "../../router/request.ts";
import { deploymentSpec } from "../../scheduler/deployment-spec.ts";
import { type PrePullDeps, prePull } from "../../scheduler/pre-pull.ts";
import type { DeploymentSpec } from "../../scheduler/replicas.ts";
import { badRequest, OllamaError, ollamaErrorHandler, ollamaErrorReply, upstreamMessage } from "./errors.ts";
import { listedModels, nameVariants, psEntry, type ServedModel, showAnswer, tagEntry } from "./models.ts";
import { type AnswerEvent, answerEvents, collectAnswer, ollamaLines, sendNdjson } from "./ndjson-stream.ts";
import { lastPullLine, ollamaPullLines } from "./pull.ts";
import {
  chatRequest,
  type EmbedRequest,
  embedAnswer,
  embeddingsAnswer,
  embeddingsBody,
  embeddingsRequest,
  embedRequest,
  generateRequest,
  loadAnswer,
  modelRequest,
  type UpstreamRequest,
} from "./translate.ts";

const validDeploymentName = Compile(DeploymentName);

/** Largest embeddings answer read from a machine (2,048 inputs of 4,096 floats fit). */
const MAX_EMBEDDINGS_BYTES = 256 * 1024 * 1024;
const MAX_ERROR_BYTES = 64 * 1024;

/**
 * The Ollama API at the gateway, translated to the OpenAI API the agents speak (docs/architecture.md §4).
 * Every route needs an API key with the "inference" scope except /api/version, which Ollama clients
 * call to find the server. Errors leave in Ollama's shape, `{"error":"…"}`.
 */
export const ollamaRoutes: FastifyPluginAsync<
  GatewayContext & {
    /** Limits, lookup, cold start, machines, retries, metering (inference/pipeline.ts). */
    inference: InferencePipeline;
    prePull: PrePullDeps;
    /** Request bodies held at once, gateway-wide (limits/request-body.ts). */
    bodyBudget: BodyBudget;
    /** How long a client may leave its answer untaken before the generation is stopped (0: forever). */
    clientStallMs: number;
  }
> = async (app, ctx) => {
  app.setErrorHandler(ollamaErrorHandler);
  // Ollama's own examples send JSON with curl -d, which labels it form data: read any body as JSON.
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === "") {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(badRequest("the request body is not valid JSON; send a JSON object"), undefined);
    }
  });
  // The key is checked before the body is read; each route takes bodies of the size it needs.
  const post = (limit: number) => inferenceBody(ctx.auth, ctx.bodyBudget, limit);

  app.get("/api/version", async () => ({ version: BETA9_VERSION }));

  // Listings show the caller's workspace's models only (auth/model-access.ts says which).
  app.get("/api/tags", async (req) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    return { models: (await listed(caller)).map(tagEntry) };
  });

  app.get("/api/ps", async (req) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    return { models: (await listed(caller)).filter((m) => m.machines.length > 0).map(psEntry) };
  });

  app.post("/api/show", post(BODY_LIMITS.small), async (req) => {
    const caller = callerOf(req);
    const asked = modelRequest(req.body).model;
    const found = await find(caller, asked);
    const model = (await listed(caller)).find((m) => m.name === found.name);
    if (!model) throw await ctx.inference.notFound(caller, asked);
    return showAnswer(model);
  });

  app.post("/api/chat", post(BODY_LIMITS.generation), async (req, reply) => {
    const caller = callerOf(req);
    return generation(req, reply, caller, "chat", chatRequest(req.body));
  });

  app.post("/api/generate", post(BODY_LIMITS.generation), async (req, reply) => {
    const caller = callerOf(req);
    return generation(req, reply, caller, "generate", generateRequest(req.body));
  });

  app.post("/api/embed", post(BODY_LIMITS.embeddings), async (req, reply) => {
    const caller = callerOf(req);
    const e = embedRequest(req.body);
    const startedAt = performance.now();
    const list =
      e.inputs.length === 0 ? await nothingToEmbed(caller, e.model) : await embeddings(req, reply, caller, e);
    return list === undefined ? undefined : embedAnswer(e.model, list, performance.now() - startedAt);
  });

  app.post("/api/embeddings", post(BODY_LIMITS.embeddings), async (req, reply) => {
    const caller = callerOf(req);
    const e = embeddingsRequest(req.body);
    const list =
      e.inputs.length === 0 ? await nothingToEmbed(caller, e.model) : await embeddings(req, reply, caller, e);
    return list === undefined ? undefined : embeddingsAnswer(list);
  });

  /**
   * Deploy and pre-pull: the caller's deployment of that name is pulled onto the machines that will
   * serve it; a name with no deployment is deployed from Ollama's registry (`ollama:NAME`) first, which
   * takes an admin key, and removed again if its pull fails.
   */
  app.post("/api/pull", post(BODY_LIMITS.small), async (req, reply) => {
    const caller = callerOf(req);
    const { model: asked, stream } = modelRequest(req.body);
    const target = await pullTarget(caller, asked);
    const client = clientGone(reply);
    let lines = ollamaPullLines(
      asked,
      target ? prePull(ctx.prePull, target.deployment, client.signal) : servedAlready(),
    );
    if (target?.created) {
      lines = undoOnFailure(lines, () =>
        ctx.store.deployments.remove(caller.workspaceId, target.deployment.name),
      );
    }
    try {
      if (!stream) return await lastPullLine(lines);
      await sendNdjson(reply, lines);
      return undefined;
    } finally {
      client.dispose();
    }
  });

  /** The deployment to pull (created when there is none); undefined when machines serve it without one. */
  async function pullTarget(
    caller: Caller,
    asked: string,
  ): Promise<{ deployment: DeploymentSpec; created: boolean } | undefined> {
    const access = await ctx.inference.models.access(caller, nameVariants(asked));
    // Through the pipeline's lookup: narrowed to the caller's countries, refused when served only outside.
    if (access.kind === "deployed") return { deployment: await pullable(caller, asked), created: false };
    if (access.kind === "shared") {
      await find(caller, asked);
      return undefined;
    }
    if (!validDeploymentName.Check(asked)) {
      throw badRequest(
        `${JSON.stringify(asked)} is not a model name; use letters, digits and . _ : / @ + - (e.g. "llama3.2:1b")`,
      );
    }
    if (!caller.scopes.includes("admin")) {
      throw new OllamaError(
        403,
        `no model ${asked} is deployed in this workspace, and deploying one takes an API key with the admin scope; deploy it with \`b9 model deploy ${asked} --source ollama:${asked}\`, then pull it with this key`,
      );
    }
    const row = await createDeployment(ctx, caller.workspaceId, { name: asked, source: `ollama:${asked}` });
    const deployment = caller.residency.countries ? await pullable(caller, asked) : deploymentSpec(row);
    return { deployment, created: true };
  }

  /** The caller's deployment of `asked`, where the caller may run it (its key may allow fewer countries). */
  async function pullable(caller: Caller, asked: string): Promise<DeploymentSpec> {
    const found = await find(caller, asked);
    if (!found.deployment) throw await ctx.inference.notFound(caller, asked);
    return found.deployment;
  }

  /** No input: nothing to ask a machine, but the model must be there, and is loaded (as Ollama does). */
  async function nothingToEmbed(caller: Caller, model: string): Promise<{ data: [] }> {
    await ctx.inference.warm(await find(caller, model));
    return { data: [] };
  }

  async function listed(caller: Caller): Promise<ServedModel[]> {
    return listedModels(ctx.registry, await ctx.inference.models.list(caller));
  }

  /** The model `asked` means in the caller's workspace (Ollama's ":latest" either way); 404 if none. */
  function find(caller: Caller, asked: string): Promise<FoundModel> {
    return ctx.inference.find(caller, asked, nameVariants(asked));
  }

  /**
   * Send a request for a model the caller may use through the inference pipeline; the engine's
   * refusal becomes Ollama's error (its "not served" our 404).
   */
  async function ask(
    req: FastifyRequest,
    caller: Caller,
    model: string,
    path: UpstreamPath,
    body: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<Dispatched> {
    const answered = await ctx.inference.dispatch({
      caller,
      asked: model,
      names: nameVariants(model),
      path,
      body,
      accept: path === "/v1/embeddings" ? "application/json" : "text/event-stream",
      // Machines stream every answer to the gateway (collected here when the client wants one object).
      streamed: path !== "/v1/embeddings",
      signal,
      requestId: req.id,
      log: req.log,
    });
    const res = answered.response;
    if (res.status !== 200) {
      const text = await readAll(res, MAX_ERROR_BYTES).catch(() => "");
      const { message, code } = upstreamMessage(text, res.status);
      // The engine refused it: nothing was generated or read.
      answered.meter.tokens(0, 0);
      answered.meter.finish(res.status);
      if (res.status === 404 && code === "model_not_found") throw await ctx.inference.notFound(caller, model);
      throw new OllamaError(res.status, message);
    }
    return answered;
  }

  async function generation(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    kind: "chat" | "generate",
    up: UpstreamRequest,
  ): Promise<object | undefined> {
    const startedAt = performance.now();
    if (up.unload) {
      // `ollama stop`: the caller's deployment drops its replicas above its minimum now.
      const found = await find(caller, up.model);
      if (!found.deployment) {
        throw new OllamaError(
          400,
          `${up.model} is served by hand on its machine, not by a deployment; stop it there (POST /inference/stop on its agent)`,
        );
      }
      await ctx.inference.release(found);
      return loadAnswer(kind, up.model, new Date().toISOString(), "unload");
    }
    if (up.loadOnly) {
      // Ollama's "load a model": nothing is generated, so neither limited nor metered.
      await ctx.inference.warm(await find(caller, up.model));
      return loadAnswer(kind, up.model, new Date().toISOString());
    }
    return guarded(reply, ctx.clientStallMs, async (client, hold) => {
      const sentAt = performance.now();
      const { response: res, meter } = hold(
        await ask(req, caller, up.model, up.path, up.body, client.signal),
      );
      // Art. 50 transparency: what a machine answered is marked AI-generated, machine-readably.
      reply.raw.setHeader(AI_GENERATED_HEADER, "true");
      const opts = { kind, model: up.model, startedAt, sentAt };
      const measured: Measured = { trailers: () => res.trailers?.() };
      const events = metered(
        answerEvents(
          tapFirst(res.body, () => meter.firstByte()),
          String(res.headers["content-type"] ?? ""),
          opts,
        ),
        meter,
        client.signal,
        measured,
      );
      if (!up.stream) {
        const answer = await collectAnswer(events, opts);
        if (measured.footprint) void reply.headers(footprintHeaders(measured.footprint));
        meter.finish(200);
        // Sent once its usage row is written: a gateway killed after the client has it lost nothing.
        await meter.written();
        return answer;
      }
      await sendNdjson(reply, ollamaLines(events, opts));
      return undefined;
    });
  }

  /** The machine's embeddings answer (undefined when the client left meanwhile). */
  async function embeddings(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    e: EmbedRequest,
  ): Promise<unknown> {
    return guarded(reply, ctx.clientStallMs, async (client, hold) => {
      const { response: res, meter } = hold(
        await ask(req, caller, e.model, "/v1/embeddings", embeddingsBody(e), client.signal),
      );
      reply.raw.setHeader(AI_GENERATED_HEADER, "true");
      const text = await readAll(res, MAX_EMBEDDINGS_BYTES, () => meter.firstByte());
      let answer: unknown;
      try {
        answer = JSON.parse(text);
      } catch {
        throw new OllamaError(502, "the machine's embeddings answer is not JSON");
      }
      const usage = tokenUsage((answer as { usage?: unknown } | null)?.usage);
      meter.tokens(usage?.prompt_tokens, usage?.completion_tokens);
      const footprint = await meter.measure(res.trailers?.());
      if (footprint) void reply.headers(footprintHeaders(footprint));
      meter.finish(200);
      await meter.written();
      return answer;
    });
  }
};

/**
 * Run one call through the pipeline and read its answer: an error after the machine answered is
 * metered with the status it will be answered with (the pipeline meters its own); a client that left
 * gets no answer (the request is metered as left); the machine's response, once `hold` has it, is
 * released whatever happens.
 */
async function guarded<T>(
  reply: FastifyReply,
  stallMs: number,
  run: (client: ClientGone, hold: (d: Dispatched) => Dispatched) => Promise<T>,
): Promise<T | undefined> {
  const client = clientGone(reply, stallMs);
  let held: Dispatched | undefined;
  try {
    return await run(client, (d) => {
      held = d;
      return d;
    });
  } catch (err) {
    // The client left: there is nobody to answer.
    if (client.signal.aborted) {
      if (!reply.sent) reply.hijack();
      return undefined;
    }
    held?.meter.finish(ollamaErrorReply(err).status);
    throw err;
  } finally {
    held?.response.cancel();
    client.dispose();
    if (held && !held.meter.finished) held.meter.finish(client.signal.aborted ? CLIENT_LEFT : 200);
  }
}

/** The machine's trailers (read once its answer has ended), and the footprint found in them. */
interface Measured {
  trailers: () => Record<string, string | string[] | undefined> | undefined;
  footprint?: Footprint | undefined;
}

/**
 * The answer's events, metering them on the way: the token counts from the last event (or the pieces
 * seen, when the answer is cut off before it), and the request's end as the events end. The last
 * event comes once the machine's answer has ended, so its footprint is known: it rides in the done
 * object as a `beta9` field (Ollama clients keep unknown fields).
 */
async function* metered(
  events: AsyncIterable<AnswerEvent>,
  meter: RequestMeter,
  clientSignal: AbortSignal,
  measured: Measured,
): AsyncGenerator<AnswerEvent> {
  let pieces = 0;
  try {
    for await (let e of events) {
      if ("done" in e) {
        meter.tokens(e.done.stats.prompt_eval_count, e.done.stats.eval_count);
        measured.footprint = await meter.measure(measured.trailers());
        if (measured.footprint) {
          const beta9 = footprintField(measured.footprint);
          e = { done: { ...e.done, stats: Object.assign({}, e.done.stats, { beta9 }) } };
        }
        // The last line goes out once the usage row is written (see relayEvents).
        meter.finish(200);
        await meter.written();
      } else {
        meter.tokens(undefined, ++pieces);
        meter.capture?.text(e.piece.content);
      }
      yield e;
    }
  } catch (err) {
    meter.finish(clientSignal.aborted ? CLIENT_LEFT : ollamaErrorReply(err).status);
    throw err;
  }
  meter.finish(200);
}

async function readAll(res: AgentResponse, limit: number, onFirstByte?: () => void): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const b of onFirstByte ? tapFirst(res.body, onFirstByte) : res.body) {
    size += b.length;
    if (size > limit) {
      res.cancel();
      throw new OllamaError(502, `the machine's answer is larger than ${limit} bytes`);
    }
    parts.push(b);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** The same lines; when they fail (not when the client leaves), `undo` runs before the error goes on. */
async function* undoOnFailure<T>(lines: AsyncIterable<T>, undo: () => Promise<unknown>): AsyncGenerator<T> {
  try {
    yield* lines;
  } catch (err) {
    await undo();
    throw err;
  }
}

/** A model served without a deployment is on its machines already: nothing to pull. */
async function* servedAlready(): AsyncGenerator<DeploymentPullEvent> {
  yield { status: "success", model: null, machines: [] };
}
