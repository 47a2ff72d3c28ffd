import type { Logger } from "@beta9/http";
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
import type { AgentState } from "../state.ts";

export interface PullOptions {
  onProgress: (p: PullProgress) => void;
  signal: AbortSignal;
  expectedSha256?: string | undefined;
  /** For whom (a workspace id, from a gateway); absent, the machine's owner. */
  owner?: string | undefined;
  /** The pool's operator gave the source. */
  sourceTrusted?: boolean | undefined;
}

/** The model store as the control API needs it. */
export interface ModelPuller {
  pull(name: string, source: string | undefined, opts: PullOptions): Promise<StoredModelView>;
  /** Refuses ("model_owned") when `name` is stored for another owner than `owner` (undefined: the machine's). */
  checkOwner(name: string, owner: string | undefined): Promise<void>;
}

export interface InferenceRoutesContext {
  inference: InferenceManager;
  models: ModelPuller;
  state: AgentState;
  log: Logger;
  /** The agent's own OpenAI-compatible base URL, for /inference/status. */
  endpoint: () => string | null;
}

/** The seed's inference lifecycle: start, stop, status, pull (with NDJSON progress when asked). */
export const inferenceRoutes: FastifyPluginAsyncTypebox<InferenceRoutesContext> = async (app, ctx) => {
  const status = async () => {
    await ctx.inference.detect();
    const s = ctx.inference.status(ctx.endpoint());
    ctx.state.inferenceStatus = s.status;
    return s;
  };

  app.get("/inference/status", { schema: { response: { 200: InferenceStatus } } }, async () => status());

  app.post(
    "/inference/start",
    { schema: { body: InferenceStartRequest, response: { 200: InferenceStatus } } },
    async (req) => {
      const body = req.body ?? {};
      if (!body.model) {
        throw new Beta9Error(
          "bad_request",
          'name the model to serve: {"model": "NAME"} (pull it first with POST /inference/pull)',
        );
      }
      // A gateway starting a deployment's model may only start that deployment's owner's weights.
      if (body.owner !== undefined) await ctx.models.checkOwner(body.model, body.owner);
      await ctx.inference.start({
        model: body.model,
        engine: body.engine as EngineName | undefined,
        contextSize: body.context_size,
        deployment: body.deployment === true,
      });
      return status();
    },
  );

  app.post(
    "/inference/stop",
    { schema: { body: InferenceStopRequest, response: { 200: InferenceStatus } } },
    async (req) => {
      await ctx.inference.stop(req.body?.model);
      return status();
    },
  );

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
    const whose = { owner: body.owner, sourceTrusted: body.source_trusted };
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
        const model = await ctx.models.pull(body.model, body.source, {
          onProgress: logProgress,
          signal: abort.signal,
          expectedSha256: body.sha256,
          ...whose,
        });
        return reply.status(201).send(model);
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
      const model = await ctx.models.pull(body.model, body.source, {
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
