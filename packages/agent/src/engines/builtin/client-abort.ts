import type { FastifyReply } from "fastify";

/** Why a generation stopped early because of the client. */
export class ClientGoneError extends Error {
  constructor(reason = "the client went away") {
    super(reason);
    this.name = "ClientGoneError";
  }
}

/**
 * A signal that aborts when the client goes away before its answer is complete (the response closes
 * without having finished), so no token is generated for nobody.
 */
export function clientAbortSignal(reply: FastifyReply): AbortController {
  const controller = new AbortController();
  const res = reply.raw;
  const onClose = () => {
    if (!res.writableFinished) controller.abort(new ClientGoneError());
  };
  if (res.destroyed) onClose();
  else res.once("close", onClose);
  return controller;
}
