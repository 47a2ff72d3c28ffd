import { Beta9Error, type Scope } from "@beta9/protocol";
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler, preParsingHookHandler } from "fastify";
import type { ApiKeyAuth, Caller } from "../auth/api-keys.ts";

const MIB = 1024 * 1024;

/**
 * Largest bodies per inference route. A chat or generate request of a 128k-token context is about
 * 512 KiB of text; images ride in it base64 (a few MiB), hence 4 MiB. Embeddings batches take many
 * inputs at once (a thousand 2 KiB passages), hence 8 MiB. Model names and pulls are small.
 */
export const BODY_LIMITS = {
  generation: 4 * MIB,
  embeddings: 8 * MIB,
  small: 64 * 1024,
} as const;

/**
 * The bytes of request bodies held in memory at once, gateway-wide: each request takes its declared
 * size (or its route's limit, when it does not declare one) before its body is read, and gives it
 * back when its answer ends. Over the budget a request is refused with 503 before its body is read.
 */
export class BodyBudget {
  readonly bytes: number;
  #held = 0;

  constructor(bytes: number) {
    this.bytes = bytes;
  }

  get held(): number {
    return this.#held;
  }

  take(n: number): boolean {
    if (this.#held + n > this.bytes) return false;
    this.#held += n;
    return true;
  }

  give(n: number): void {
    this.#held = Math.max(0, this.#held - n);
  }
}

/** Each request's caller, known before its body is read. */
const callers = new WeakMap<FastifyRequest, Caller>();

/**
 * The caller `inferenceBody`'s hook authenticated (the route's handler runs only after it did).
 * Throws when the route was registered without that hook: a programming error, not the client's.
 */
export function callerOf(req: FastifyRequest): Caller {
  const caller = callers.get(req);
  if (!caller) throw new Error(`${req.url} was registered without inferenceBody()`);
  return caller;
}

/**
 * Route options for an inference route with a body: the key is checked before a byte of the body
 * is read (a request without one is refused while it is still sending, and its connection closed),
 * the body is bounded by `limit`, and it must fit the gateway's `budget`.
 */
export function inferenceBody(
  auth: Pick<ApiKeyAuth, "authenticate">,
  budget: BodyBudget,
  limit: number,
  /** The scope the route takes (job inputs take `jobs`). */
  scope: Scope = "inference",
): { bodyLimit: number; onRequest: onRequestAsyncHookHandler; preParsing: preParsingHookHandler } {
  return {
    bodyLimit: limit,
    onRequest: async (req, reply) => {
      try {
        callers.set(req, await auth.authenticate(req, scope));
      } catch (err) {
        // The body still on its way is not read: the connection ends with the answer.
        closeUnread(req, reply);
        throw err;
      }
      const declared = Number(req.headers["content-length"]);
      if (Number.isFinite(declared) && declared > limit) {
        // A client cut off while it still sends often never reads the answer (a reset, EPIPE): the
        // caller's body is read and dropped, never held, so it learns why; a huge one is not read.
        if (declared > DRAIN_MAX_BYTES || !(await drained(req, DRAIN_TIMEOUT_MS))) closeUnread(req, reply);
        throw new Beta9Error(
          "payload_too_large",
          `the request body is ${mib(declared)}; this route takes at most ${mib(limit)}: send a shorter prompt or fewer inputs per request`,
        );
      }
    },
    // A callback hook: every inference request passes it, and an async one costs a promise each time.
    preParsing: (req, reply, payload, done) => {
      const declared = Number(req.headers["content-length"]);
      const size = Number.isFinite(declared) && declared >= 0 ? Math.min(declared, limit) : limit;
      if (!budget.take(size)) {
        closeUnread(req, reply);
        void reply.header("retry-after", "2");
        return done(
          new Beta9Error(
            "unavailable",
            "this gateway holds as many request bodies as it may at once; retry in a few seconds",
          ),
        );
      }
      reply.raw.once("close", () => budget.give(size));
      done(null, payload);
    },
  };
}

/** Bodies over a route's limit up to this size are read and dropped so the client gets its 413. */
const DRAIN_MAX_BYTES = 64 * MIB;
const DRAIN_TIMEOUT_MS = 30_000;

const mib = (n: number) => `${(n / MIB).toFixed(n < MIB ? 2 : 1)} MiB`;

/** Read a request's body to its end, dropping it; false when it did not end within `timeoutMs`. */
function drained(req: FastifyRequest, timeoutMs: number): Promise<boolean> {
  const raw = req.raw;
  if (raw.complete) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      raw.off("end", onEnd);
      raw.off("error", onError);
      raw.off("close", onError);
      resolve(ok);
    };
    const onEnd = () => done(true);
    const onError = () => done(raw.complete);
    raw.on("end", onEnd);
    raw.on("error", onError);
    raw.on("close", onError);
    raw.resume();
  });
}

function closeUnread(req: FastifyRequest, reply: FastifyReply): void {
  const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"]) > 0;
  if (hasBody && req.raw.httpVersionMajor < 2) void reply.header("connection", "close");
}
