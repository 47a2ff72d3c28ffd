import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { REQUEST_ID_HEADER } from "@beta9/protocol/headers";
import type { FastifyInstance } from "fastify";

/**
 * A caller's id is kept when it is short and made of characters that are safe in a log line, a
 * header and a file name (a proxy's or a client's own correlation id); anything else could forge log
 * lines or bloat every row it lands in, so it is replaced.
 */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** The request's id: the caller's x-request-id when it is short and safe, else a fresh UUID. */
export function requestIdOf(req: Pick<IncomingMessage, "headers">): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === "string" && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Every answer says which id its request had (errors too, and answers relayed raw after hijack()),
 * so a user can quote it and the operator find it in every log and usage row. First of the hooks:
 * one that refuses the request still answers with it.
 */
export function installRequestId(app: FastifyInstance): void {
  // A callback hook, not an async one: every request passes it, and a promise per hook is work.
  app.addHook("onRequest", (req, reply, done) => {
    reply.raw.setHeader(REQUEST_ID_HEADER, req.id);
    done();
  });
}
