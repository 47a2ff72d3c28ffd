import { jsonDepthExceeds, type Logger, MAX_JSON_DEPTH } from "@beta9/http";
import {
  Beta9Error,
  InferencePullRequest,
  InferenceStartRequest,
  InferenceStatus,
  InferenceStopRequest,
  type PullProgress,
  type StoredModelView,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { EngineName } from "../engines/engine.ts";
import type { InferenceManager } from "../inference/manager.ts";
import type { ModelPuller, PullerOptions } from "../models/puller.ts";
import type { AgentState } from "../state.ts";

export interface InferenceRoutesContext {
  inference: InferenceManager;
  models: ModelPuller;
  state: AgentState;
  log: Logger;
  /** The agent's own OpenAI-compatible base URL, for /inference/status. */
  endpoint: () => string | null;
}

/** The fork's inference lifecycle: start, stop, status, pull (with NDJSON progress when asked). */
export const inferenceRoutes: FastifyPluginAsyncTypebox<InferenceRoutesContext> = async (app, ctx) => {
  // The fork's callers use `curl -d '{…}'` (form-urlencoded) or send no content type: a body is JSON here.
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    const text = body.toString();
    if (text.trim() === "") return done(null, undefined);
    if (jsonDepthExceeds(text, MAX_JSON_DEPTH))
      return done(
        new Beta9Error("bad_request", `the request body nests JSON deeper than ${MAX_JSON_DEPTH} levels`),
      );
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new Beta9Error("bad_request", 'the request body is not JSON; send e.g. -d \'{"model": "NAME"}\''));
    }
  });
  // A POST with no body at all means "no options" (stop everything, start the usual model).
  app.addHook("preValidation", async (req) => {
    if (req.method === "POST" && (req.body === undefined || req.body === null)) req.body = {};
  });

  /** The model this agent last started by hand, for a start that names none. */
  let lastStarted: string | undefined;

  const status = async (message?: string) => {
    await ctx.inference.detect();
    const s = ctx.inference.status(ctx.endpoint());
    ctx.state.inferenceStatus = s.status;
    return message === undefined ? s : { ...s, message };
  };

  /** What a start with no model serves: the last one started here, else the only model stored. */
  const usualModel = async (): Promise<string> => {
    if (lastStarted !== undefined) return lastStarted;
    const stored = (await ctx.models.list?.()) ?? [];
    if (stored.length === 1) return stored[0]!.name;
    throw new Beta9Error(
      "bad_request",
      stored.length === 0
        ? 'no model is stored here: pull one with POST /inference/pull {"model": "NAME"}, then start it'
        : `name the model to serve: {"model": "NAME"}, one of ${stored.map((m) => m.name).join(", ")}`,
    );
  };

  app.get("/inference/status", { schema: { response: { 200: InferenceStatus } } }, async () => status());

  app.post(
    "/inference/start",
    { schema: { body: InferenceStartRequest, response: { 200: InferenceStatus } } },
    async (req) => {
      const body = req.body ?? {};
      const model = body.model ?? (await usualModel());
      // A gateway starting a deployment's model may only start that deployment's owner's weights.
      if (body.owner !== undefined) await ctx.models.checkOwner(model, body.owner);
      await ctx.inference.start({
        model,
        engine: body.engine as EngineName | undefined,
        contextSize: body.context_size,
        deployment: body.deployment === true,
        pool: body.pool,
      });
      if (body.owner === undefined && body.deployment !== true) lastStarted = model;
      return status(`${model} is running`);
    },
  );

  app.post(
    "/inference/stop",
    { schema: { body: InferenceStopRequest, response: { 200: InferenceStatus } } },
    async (req) => {
      const model = req.body?.model;
      await ctx.inference.stop(model);
      return status(model === undefined ? "stopped all models" : `stopped ${model}`);
    },
  );

  /**
   * Pull as asked; the machine's owner naming only a model this store lacks gets it from the Ollama
   * registry by that name, as the fork did (`ollama:NAME[:TAG]`).
   */
  const pullNamed = async (body: InferencePullRequest, opts: PullerOptions): Promise<StoredModelView> => {
    try {
      return await ctx.models.pull(body.model, body.source, opts);
    } catch (err) {
      const byName = body.source === undefined && body.owner === undefined;
      if (!byName || !(err instanceof Beta9Error) || err.code !== "model_not_found") throw err;
    }
    const source = `ollama:${body.model}`;
    ctx.log.info({ model: body.model, source }, `${body.model} is not stored here; pulling ${source}`);
    try {
      return await ctx.models.pull(body.model, source, opts);
    } catch (err) {
      if (opts.signal.aborted) throw err;
      // The Ollama engine's own failures (not installed, registry unreachable) are plain errors.
      const code = err instanceof Beta9Error ? err.code : "download_failed";
      throw new Beta9Error(
        code,
        `${body.model} is not stored here and pulling ${source} failed: ${(err as Error).message}; give a source: a path, http(s)://…, hf:ORG/REPO/FILE.gguf or ollama:NAME:TAG`,
        { cause: err },
      );
    }
  };

  app.post("/inference/pull", { schema: { body: InferencePullRequest } }, async (req, reply) => {
    const body = req.body;
    const wantStream = body.stream ?? String(req.headers.accept ?? "").includes("application/x-ndjson");
    const abort = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableEnded) abort.abort();
    });
    let lastLogged = -1;
    const logProgress = (p: PullProgress) => {
      const pct = p.total ? Math.floor((100 * (p.completed ?? 0)) / p.total / 10) * 10 : -1;
      if (pct !== lastLogged) {
        lastLogged = pct;
        ctx.log.info(
          { model: body.model, ...p },
          pct >= 0 ? `pull ${body.model}: ${pct}%` : `pull ${body.model}: ${p.status}`,
        );
      }
    };
    const whose = {
      owner: body.owner,
      sourceTrusted: body.source_trusted,
      quantize: body.quantize,
      pool: body.pool,
    };
    // What the caller is told may hide why (a workspace's source); the machine's log keeps the reason.
    const logFailure = (e: Beta9Error) => {
      if (abort.signal.aborted) return;
      const cause = e.cause instanceof Error ? e.cause.message : undefined;
      ctx.log.warn(
        { model: body.model, code: e.code, owner: body.owner, cause },
        `pull ${body.model} failed: ${e.message}`,
      );
    };
    if (!wantStream) {
      try {
        const model = await pullNamed(body, {
          onProgress: logProgress,
          signal: abort.signal,
          expectedSha256: body.sha256,
          ...whose,
        });
        return reply.status(201).send({ ...model, status: "ok", message: `pulled ${model.name}` });
      } catch (err) {
        if (err instanceof Beta9Error) logFailure(err);
        throw err;
      }
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-cache" });
    const send = (p: PullProgress) => {
      if (!res.writableEnded) res.write(`${JSON.stringify(p)}\n`);
    };
    try {
      const model = await pullNamed(body, {
        onProgress: (p) => {
          logProgress(p);
          send(p);
        },
        signal: abort.signal,
        expectedSha256: body.sha256,
        ...whose,
      });
      send({ status: "success", model });
    } catch (err) {
      const e = err instanceof Beta9Error ? err : new Beta9Error("download_failed", (err as Error).message);
      logFailure(e);
      send({ status: "error", error: { code: e.code, message: e.message } });
    }
    res.end();
  });
};
