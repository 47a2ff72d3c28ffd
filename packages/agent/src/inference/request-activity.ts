import { EventEmitter } from "node:events";
import type { FastifyInstance, FastifyRequest } from "fastify";

/** Who asked this machine to serve a model: the gateway (a replica of a deployment) or a local caller. */
export type ServeOrigin = "gateway" | "local";

/** The inference requests one served model has handled. */
export interface ModelActivity {
  model: string;
  origin: ServeOrigin | null;
  running: number;
  served: number;
  lastRequestAt: number | null;
}

/** The work running here, per model: requests in flight and answered, and who started the model. */
export class RequestActivity extends EventEmitter<{ change: [] }> {
  readonly #models = new Map<string, ModelActivity>();

  #entry(model: string): ModelActivity {
    let e = this.#models.get(model);
    if (!e) {
      e = { model, origin: null, running: 0, served: 0, lastRequestAt: null };
      this.#models.set(model, e);
    }
    return e;
  }

  /** A request for `model` began; call the returned function once when it ends. */
  begin(model: string): () => void {
    const e = this.#entry(model);
    e.running++;
    e.lastRequestAt = Date.now();
    this.emit("change");
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      e.running--;
      e.served++;
      this.emit("change");
    };
  }

  started(model: string, origin: ServeOrigin): void {
    this.#entry(model).origin = origin;
    this.emit("change");
  }

  /** The model (or every model) stopped being served: its counts start over next time. */
  stopped(model?: string): void {
    if (model === undefined) this.#models.clear();
    else this.#models.delete(model);
    this.emit("change");
  }

  get(model: string): ModelActivity | undefined {
    return this.#models.get(model);
  }
}

function bodyModel(req: FastifyRequest): string | undefined {
  const body = req.body as { model?: unknown } | null | undefined;
  return body && typeof body.model === "string" && body.model ? body.model : undefined;
}

/**
 * A hook on the control server that records who started a model: successful starts and stops record
 * the origin. (The OpenAI requests themselves are counted where they are served: openai-routes.ts.)
 */
export function trackRequests(
  app: FastifyInstance,
  activity: RequestActivity,
  deps: { fromGateway: (req: FastifyRequest) => boolean },
): void {
  // A callback hook: every request passes it, and an async one costs a promise each time.
  app.addHook("onResponse", (req, reply, done) => {
    const path = req.method === "POST" && reply.statusCode === 200 ? req.routeOptions.url : undefined;
    if (path === "/inference/start") {
      const model = bodyModel(req);
      if (model !== undefined) activity.started(model, deps.fromGateway(req) ? "gateway" : "local");
    } else if (path === "/inference/stop") {
      activity.stopped(bodyModel(req));
    }
    done();
  });
}
