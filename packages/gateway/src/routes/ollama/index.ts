import { BETA9_VERSION, DeploymentName, type DeploymentPullEvent } from "@beta9/protocol";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { Compile } from "typebox/compile";
import type { Caller } from "../../auth/api-keys.ts";
import type { GatewayContext } from "../../context.ts";
import { clientGone, tapFirst } from "../../http/client-gone.ts";
import { limitMessage } from "../../limits/key-limits.ts";
import { tokenUsage } from "../../metering/answer-usage.ts";
import { CLIENT_LEFT, type Metering, type RequestMeter } from "../../metering/metering.ts";
import { type AgentResponse, requestModel } from "../../router/request.ts";
import type { Router } from "../../router/router.ts";
import { deploymentSpec } from "../../scheduler/deployment-spec.ts";
import { type PrePullDeps, prePull } from "../../scheduler/pre-pull.ts";
import type { DeploymentSpec } from "../../scheduler/replicas.ts";
import { createDeployment } from "../management/deployments.ts";
import {
  badRequest,
  modelNotFound,
  OllamaError,
  ollamaErrorHandler,
  ollamaErrorReply,
  upstreamMessage,
} from "./errors.ts";
import { nameVariants, psEntry, resolveModel, servedModels, showAnswer, tagEntry } from "./models.ts";
import { type AnswerEvent, answerEvents, collectAnswer, ollamaLines, sendNdjson } from "./ndjson-stream.ts";
import { lastPullLine, ollamaPullLines } from "./pull.ts";
import {
  asBody,
  chatRequest,
  type EmbedRequest,
  embedAnswer,
  embeddingsAnswer,
  embeddingsBody,
  embeddingsRequest,
  embedRequest,
  generateRequest,
  loadAnswer,
  modelOf,
  streamOf,
  type UpstreamRequest,
} from "./translate.ts";

const validDeploymentName = Compile(DeploymentName);

const HEADERS_TIMEOUT_MS = 300_000;
/** Largest embeddings answer read from a machine (2,048 inputs of 4,096 floats fit). */
const MAX_EMBEDDINGS_BYTES = 256 * 1024 * 1024;
const MAX_ERROR_BYTES = 64 * 1024;

/**
 * The Ollama API at the gateway, translated to the OpenAI API the agents speak (design decision 3).
 * Every route needs an API key with the "inference" scope except /api/version, which Ollama clients
 * call to find the server. Errors leave in Ollama's shape, `{"error":"…"}`.
 */
export const ollamaRoutes: FastifyPluginAsync<
  GatewayContext & { router: Router; metering: Metering; prePull: PrePullDeps }
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
  const post = { bodyLimit: 16 * 1024 * 1024 };

  app.get("/api/version", async () => ({ version: BETA9_VERSION }));

  app.get("/api/tags", async (req) => {
    await ctx.auth.authenticate(req, "inference");
    return { models: servedModels(ctx.registry).map(tagEntry) };
  });

  app.get("/api/ps", async (req) => {
    await ctx.auth.authenticate(req, "inference");
    return { models: servedModels(ctx.registry).map(psEntry) };
  });

  app.post("/api/show", post, async (req) => {
    await ctx.auth.authenticate(req, "inference");
    const asked = modelOf(asBody(req.body));
    const name = resolveModel(ctx.registry, asked);
    const model = servedModels(ctx.registry).find((m) => m.name === name);
    if (!model) throw notServed(asked);
    return showAnswer(model);
  });

  app.post("/api/chat", post, async (req, reply) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    return generation(req, reply, caller, "chat", chatRequest(req.body));
  });

  app.post("/api/generate", post, async (req, reply) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    return generation(req, reply, caller, "generate", generateRequest(req.body));
  });

  app.post("/api/embed", post, async (req, reply) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    const e = embedRequest(req.body);
    const startedAt = performance.now();
    const list = e.inputs.length === 0 ? nothingToEmbed(e.model) : await embeddings(req, reply, caller, e);
    return list === undefined ? undefined : embedAnswer(e.model, list, performance.now() - startedAt);
  });

  app.post("/api/embeddings", post, async (req, reply) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    const e = embeddingsRequest(req.body);
    const list = e.inputs.length === 0 ? nothingToEmbed(e.model) : await embeddings(req, reply, caller, e);
    return list === undefined ? undefined : embeddingsAnswer(list);
  });

  /**
   * Deploy and pre-pull: the caller's deployment of that name is pulled onto the machines that will
   * serve it; a name with no deployment is deployed from Ollama's registry (`ollama:NAME`) first, which
   * takes an admin key, and removed again if its pull fails.
   */
  app.post("/api/pull", post, async (req, reply) => {
    const caller = await ctx.auth.authenticate(req, "inference");
    const body = asBody(req.body);
    const asked = modelOf(body);
    const stream = streamOf(body);
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
    for (const name of nameVariants(asked)) {
      const row = await ctx.store.deployments.get(caller.workspaceId, name);
      if (row) return { deployment: deploymentSpec(row), created: false };
    }
    if (ctx.registry.serving(resolveModel(ctx.registry, asked)).length > 0) return undefined;
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
    return { deployment: deploymentSpec(row), created: true };
  }

  /** No input: nothing to ask a machine, but the model must be served (as Ollama loads it). */
  function nothingToEmbed(model: string): { data: [] } {
    if (ctx.registry.serving(resolveModel(ctx.registry, model)).length === 0) throw notServed(model);
    return { data: [] };
  }

  function notServed(model: string): OllamaError {
    return modelNotFound(model, [...ctx.registry.servedModels().keys()].sort());
  }

  /**
   * Admit a request that will go to a machine under its key's limits, and start its meter (under the
   * model's served name). A refused request is metered too, and answered 429 with Retry-After.
   */
  function admit(caller: Caller, model: string): RequestMeter {
    const meter = ctx.metering.start(caller, resolveModel(ctx.registry, model));
    const admission = ctx.metering.admit(caller);
    if (!admission.ok) {
      meter.finish(429);
      throw new OllamaError(429, limitMessage(admission, caller.limits), {
        retryAfterS: admission.retryAfterS,
      });
    }
    return meter;
  }

  /** Send a request for `model` to a machine serving it; throws Ollama's errors when none answers. */
  async function ask(
    req: FastifyRequest,
    model: string,
    path: string,
    body: Record<string, unknown>,
    signal: AbortSignal,
    meter: RequestMeter,
  ): Promise<AgentResponse> {
    const served = resolveModel(ctx.registry, model);
    const result = await requestModel(
      ctx.router,
      served,
      {
        path,
        body: JSON.stringify({ ...body, model: served }),
        headers: {
          "content-type": "application/json",
          accept: path === "/v1/embeddings" ? "application/json" : "text/event-stream",
        },
        headersTimeoutMs: HEADERS_TIMEOUT_MS,
        signal,
      },
      {
        onRetry: (machineId, err) =>
          req.log.warn(
            { machine_id: machineId, model: served, err: err.message },
            "machine failed before answering; trying another",
          ),
      },
    );
    if (result.kind === "not_served") throw notServed(model);
    if (result.kind === "failed") {
      if (signal.aborted) throw result.error;
      throw new OllamaError(
        503,
        `every machine serving ${model} failed to answer (${result.error.message}); retry shortly`,
      );
    }
    const res = result.response;
    meter.machine(res.machineId);
    if (res.status !== 200) {
      const text = await readAll(res, MAX_ERROR_BYTES).catch(() => "");
      const { message, code } = upstreamMessage(text, res.status);
      if (res.status === 404 && code === "model_not_found") throw notServed(model);
      throw new OllamaError(res.status, message);
    }
    return res;
  }

  async function generation(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    kind: "chat" | "generate",
    up: UpstreamRequest,
  ): Promise<object | undefined> {
    const startedAt = performance.now();
    if (up.loadOnly) {
      // Nothing goes to a machine: neither limited nor metered.
      if (ctx.registry.serving(resolveModel(ctx.registry, up.model)).length === 0) throw notServed(up.model);
      return loadAnswer(kind, up.model, new Date().toISOString());
    }
    const meter = admit(caller, up.model);
    const client = clientGone(reply);
    let res: AgentResponse | undefined;
    try {
      const sentAt = performance.now();
      res = await ask(req, up.model, up.path, up.body, client.signal, meter);
      const opts = { kind, model: up.model, startedAt, sentAt };
      const events = metered(
        answerEvents(
          tapFirst(res.body, () => meter.firstByte()),
          String(res.headers["content-type"] ?? ""),
          opts,
        ),
        meter,
        client.signal,
      );
      if (!up.stream) {
        const answer = await collectAnswer(events, opts);
        meter.finish(200);
        return answer;
      }
      await sendNdjson(reply, ollamaLines(events, opts));
      return undefined;
    } catch (err) {
      // The client left: there is nobody to answer.
      if (client.signal.aborted) {
        if (!reply.sent) reply.hijack();
        return undefined;
      }
      meter.finish(ollamaErrorReply(err).status);
      throw err;
    } finally {
      res?.cancel();
      client.dispose();
      if (!meter.finished) meter.finish(client.signal.aborted ? CLIENT_LEFT : 200);
    }
  }

  /** The machine's embeddings answer (undefined when the client left meanwhile). */
  async function embeddings(
    req: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    e: EmbedRequest,
  ): Promise<unknown> {
    const meter = admit(caller, e.model);
    const client = clientGone(reply);
    let res: AgentResponse | undefined;
    try {
      res = await ask(req, e.model, "/v1/embeddings", embeddingsBody(e), client.signal, meter);
      const text = await readAll(res, MAX_EMBEDDINGS_BYTES, () => meter.firstByte());
      let answer: unknown;
      try {
        answer = JSON.parse(text);
      } catch {
        throw new OllamaError(502, "the machine's embeddings answer is not JSON");
      }
      const usage = tokenUsage((answer as { usage?: unknown } | null)?.usage);
      meter.tokens(usage?.prompt_tokens, usage?.completion_tokens);
      meter.finish(200);
      return answer;
    } catch (err) {
      if (client.signal.aborted) {
        if (!reply.sent) reply.hijack();
        return undefined;
      }
      meter.finish(ollamaErrorReply(err).status);
      throw err;
    } finally {
      res?.cancel();
      client.dispose();
      if (!meter.finished) meter.finish(CLIENT_LEFT);
    }
  }
};

/**
 * The answer's events, metering them on the way: the token counts from the last event (or the pieces
 * seen, when the answer is cut off before it), and the request's end as the events end.
 */
async function* metered(
  events: AsyncIterable<AnswerEvent>,
  meter: RequestMeter,
  clientSignal: AbortSignal,
): AsyncGenerator<AnswerEvent> {
  let pieces = 0;
  try {
    for await (const e of events) {
      if ("done" in e) meter.tokens(e.done.stats.prompt_eval_count, e.done.stats.eval_count);
      else meter.tokens(undefined, ++pieces);
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
