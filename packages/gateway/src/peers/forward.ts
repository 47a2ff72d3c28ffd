import { HOP_BY_HOP, passOnHeaders } from "@beta9/http";
import { REQUEST_ID_HEADER } from "@beta9/protocol";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type Dispatcher, request, Agent as UndiciAgent } from "undici";
import { drained } from "../http/client-gone.ts";
import type { MachineRegistry } from "../machines/registry.ts";
import type { Peer, PeerDirectory } from "./directory.ts";

/**
 * Forwarding between gateway replicas (see README.md beside this file): an inference request for a
 * model no machine connected here serves, which a peer's machines do serve, is sent on to that peer
 * as it came (the caller's own key, so the peer authenticates, limits and meters it as its own
 * request), and the peer's answer streams back. A header marks it, so a forwarded request is served
 * where it lands and never forwarded again.
 */
export const FORWARDED_HEADER = "x-beta9-forwarded-by";

/** The inference routes whose body names a model (OpenAI and Ollama APIs). */
const INFERENCE_PATHS = new Set([
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/api/chat",
  "/api/generate",
  "/api/embed",
  "/api/embeddings",
]);

/** Not passed on: they describe this hop, or are recomputed for the new body. */
const DROPPED = new Set([...HOP_BY_HOP, "content-length", FORWARDED_HEADER]);

export interface ForwardingDeps {
  directory: PeerDirectory;
  registry: MachineRegistry;
  /** How long a peer may take to answer (a cold start there waits as long as one here). */
  headersTimeoutMs: number;
}

/**
 * Install forwarding on the inference routes. With no live peer (one replica, or SQLite) it only
 * reads an empty list: every request takes the local path exactly as before.
 */
export function installPeerForwarding(app: FastifyInstance, deps: ForwardingDeps): () => Promise<void> {
  // Peers are few and long-lived: keep connections to them open (no handshake per request).
  const dispatcher = new UndiciAgent({ keepAliveTimeout: 30_000, connect: { timeout: 2_000 } });
  app.addHook("preHandler", async (req, reply) => {
    if (req.method !== "POST" || deps.directory.peers.length === 0) return;
    if (req.headers[FORWARDED_HEADER] !== undefined) return;
    if (!INFERENCE_PATHS.has(req.routeOptions.url ?? "")) return;
    const model = (req.body as { model?: unknown } | undefined)?.model;
    if (typeof model !== "string" || !model) return;
    const peer = choosePeer(deps, model);
    if (!peer) return;
    await forward(req, reply, peer, deps, dispatcher);
  });
  return () => dispatcher.close();
}

/**
 * Where a request goes when it cannot be served here: the peer whose machines serve the model; or,
 * when no machine anywhere serves it and none is connected here, the peer with machines, which can
 * place it (a cold start). Served here, or placeable here: stay.
 */
function choosePeer(deps: ForwardingDeps, model: string): Peer | undefined {
  if (deps.registry.serving(model).length > 0) return undefined;
  const peer = deps.directory.serving(model);
  if (peer) return peer;
  if (deps.registry.views().some((v) => v.connection === "channel")) return undefined;
  return deps.directory.placing();
}

/**
 * Send the request to `peer` and stream its answer back, byte for byte, with backpressure both ways
 * and the peer's request aborted when the client leaves. A peer that cannot be reached leaves the
 * request to the local path (the agents it held may be moving here now); a peer that fails after
 * answering ends the client's response broken, never short.
 */
async function forward(
  req: FastifyRequest,
  reply: FastifyReply,
  peer: Peer,
  deps: ForwardingDeps,
  dispatcher: Dispatcher,
): Promise<void> {
  const abort = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableEnded) abort.abort(new Error("the client went away"));
  };
  reply.raw.on("close", onClose);
  const headers: Record<string, string> = { [FORWARDED_HEADER]: deps.directory.id };
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined && !DROPPED.has(k)) headers[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  headers["content-type"] = "application/json";
  // This replica's id for the request (the client's when safe, else the one given here): the peer keeps
  // it, so both replicas' logs and the usage row name the request alike.
  headers[REQUEST_ID_HEADER] = req.id;
  let upstream: Dispatcher.ResponseData;
  try {
    upstream = await request(new URL(req.url, peer.url), {
      method: "POST",
      headers,
      body: JSON.stringify(req.body),
      signal: abort.signal,
      dispatcher,
      headersTimeout: deps.headersTimeoutMs,
      // A stream's tokens may pause (a long prompt); the peer's own liveness ends a dead one sooner.
      bodyTimeout: 300_000,
    });
  } catch (err) {
    reply.raw.off("close", onClose);
    if (abort.signal.aborted) {
      reply.hijack();
      reply.raw.destroy();
      return;
    }
    deps.directory.unreachable(peer);
    req.log.warn(
      { peer: peer.id, url: peer.url, err: (err as Error).message },
      "could not reach the gateway replica serving this model; serving here",
    );
    return; // the route handles it here
  }
  reply.hijack();
  const res = reply.raw;
  try {
    const pass = passOnHeaders(upstream.headers);
    res.writeHead(upstream.statusCode, pass.headers);
    if (pass.sse) res.flushHeaders();
    for await (const chunk of upstream.body) {
      if (!res.write(chunk)) await drained(res);
      if (res.destroyed) break;
    }
    if (!res.destroyed) res.end();
  } catch (err) {
    // Cut off (the peer died mid-answer, or the client left): a broken response, never a short one.
    if (!abort.signal.aborted)
      req.log.warn({ peer: peer.id, err: (err as Error).message }, "the peer's answer was cut off");
    res.destroy();
  } finally {
    reply.raw.off("close", onClose);
    if (!upstream.body.destroyed) upstream.body.destroy();
  }
}
