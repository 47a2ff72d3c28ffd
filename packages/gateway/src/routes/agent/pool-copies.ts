import { Readable } from "node:stream";
import { bearerToken } from "@beta9/http";
import {
  AGENT_BLOB_PATH,
  AGENT_CONVERTED_PATH,
  Beta9Error,
  MACHINE_ID_HEADER,
  POOL_COPY_PATH,
  POOL_TICKET_HEADER,
} from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { GatewayContext } from "../../context.ts";
import { verifyMachineCredential } from "../../machines/credentials.ts";
import { requestAgent } from "../../router/request.ts";
import type { PoolCopies } from "../../scheduler/pool-copies.ts";

const SHA256 = /^[a-f0-9]{64}$/;
/** A holder answers at once with the file's headers; its bytes then take as long as they take. */
const HEADERS_TIMEOUT_MS = 30_000;
/** The holder's headers a download needs to check and resume what it gets. */
const PASSED_ON = ["content-length", "content-range", "accept-ranges", "etag"] as const;

/**
 * `GET POOL_COPY_PATH/<sha256>[/<file>]`: a machine fetching another machine's conversion (a GGUF, or a
 * file of a converted directory), as its pull's or start's offer said (PoolCopies). It shows its credential and id and the offer's ticket; the bytes come from a
 * machine that holds them, over that machine's channel, passed through as they come (Range included,
 * so a cut download resumes). The fetching machine checks their sha256 itself.
 */
export const poolCopyRoutes: FastifyPluginAsyncTypebox<GatewayContext & { copies: PoolCopies }> = async (
  app,
  ctx,
) => {
  // A converted GGUF, and a file of a converted directory (its b9-conversion.json first).
  app.get<{ Params: { sha256: string } }>(`${POOL_COPY_PATH}/:sha256`, (req, reply) =>
    relay(req, reply, req.params.sha256, (owner) => `${AGENT_BLOB_PATH}/${req.params.sha256}?owner=${owner}`),
  );
  app.get<{ Params: { sha256: string; file: string } }>(`${POOL_COPY_PATH}/:sha256/:file`, (req, reply) =>
    relay(
      req,
      reply,
      req.params.sha256,
      (owner) =>
        `${AGENT_CONVERTED_PATH}/${req.params.sha256}/${encodeURIComponent(req.params.file)}?owner=${owner}`,
    ),
  );

  async function relay(
    req: FastifyRequest,
    reply: FastifyReply,
    sha256: string,
    pathFor: (owner: string) => string,
  ): Promise<FastifyReply> {
    const machineId = req.headers[MACHINE_ID_HEADER];
    if (typeof machineId !== "string" || machineId === "")
      throw new Beta9Error("credential_invalid", `send ${MACHINE_ID_HEADER} with the machine's credential`);
    const machine = await verifyMachineCredential(
      ctx,
      machineId,
      bearerToken(req.headers.authorization),
      req.ip,
    );
    const ticket = req.headers[POOL_TICKET_HEADER];
    const grant = SHA256.test(sha256)
      ? ctx.copies.claim(typeof ticket === "string" ? ticket : undefined, machine.id, sha256)
      : undefined;
    if (!grant)
      throw new Beta9Error(
        "forbidden",
        "this machine was not offered that conversion, or its offer expired: pull the model again through the gateway",
      );
    const abort = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    const headers: Record<string, string> = {};
    for (const h of ["range", "if-range"] as const) {
      const v = req.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    const refused: string[] = [];
    for (const holder of grant.holders) {
      const link = ctx.registry.link(holder);
      if (!link?.request) continue;
      const attempt = await requestAgent(holder, link, {
        method: "GET",
        path: pathFor(encodeURIComponent(grant.owner)),
        body: "",
        headers,
        headersTimeoutMs: HEADERS_TIMEOUT_MS,
        signal: abort.signal,
      });
      if (!attempt.started) {
        refused.push(attempt.error.message);
        continue;
      }
      const res = attempt.response;
      if (res.status !== 200 && res.status !== 206 && res.status !== 416) {
        res.cancel();
        // The holder no longer has it (removed, or replaced by another conversion): not offered again.
        if (res.status === 404) grant.forget(holder);
        refused.push(`${ctx.registry.get(holder)?.name ?? holder} answered ${res.status}`);
        continue;
      }
      req.log.info(
        { sha256, from: holder, to: machine.id, range: headers.range },
        "copying a conversion between machines",
      );
      grant.sending(holder);
      reply.raw.on("close", () => res.cancel());
      reply.status(res.status).type("application/octet-stream");
      for (const h of PASSED_ON) {
        const v = res.headers[h];
        if (typeof v === "string") reply.header(h, v);
      }
      return reply.send(Readable.from(res.body));
    }
    throw new Beta9Error(
      "unavailable",
      `no machine holding that conversion answered${refused.length > 0 ? ` (${refused.join("; ")})` : ""}; the pull converts the model itself`,
    );
  }
};
