import { createReadStream } from "node:fs";
import { AGENT_BLOB_PATH, Beta9Error } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import type { ModelStore } from "../models/store.ts";

export interface BlobRoutesContext {
  store: ModelStore;
  fromGateway: (req: FastifyRequest) => boolean;
}

const SHA256 = /^[a-f0-9]{64}$/;
const OWNER = /^[A-Za-z0-9:_-]{1,128}$/;

/**
 * `GET AGENT_BLOB_PATH/<sha256>?owner=…`: a conversion's bytes, for the gateway to relay to another
 * machine of the pool that would otherwise convert the same model again. Only over the channel (the
 * gateway checked who asks), only a conversion stored for that owner, with Range for a resumed copy.
 */
export const blobRoutes: FastifyPluginAsyncTypebox<BlobRoutesContext> = async (app, ctx) => {
  app.get<{ Params: { sha256: string }; Querystring: { owner?: string } }>(
    `${AGENT_BLOB_PATH}/:sha256`,
    async (req, reply) => {
      if (!ctx.fromGateway(req))
        throw new Beta9Error(
          "forbidden",
          "a conversion's bytes go only to the gateway, over the agent channel",
        );
      const { sha256 } = req.params;
      const owner = req.query.owner;
      if (!SHA256.test(sha256) || (owner !== undefined && !OWNER.test(owner)))
        throw new Beta9Error(
          "bad_request",
          "give the conversion's sha256 (64 hex digits) and its owner's id",
        );
      const blob = await ctx.store.convertedBlob(sha256, owner ?? null);
      if (!blob)
        throw new Beta9Error(
          "model_not_found",
          `no conversion with sha256 ${sha256} is stored here for that owner`,
        );
      const etag = `"${sha256}"`;
      const ifRange = req.headers["if-range"];
      const range =
        ifRange === undefined || ifRange === etag ? byteRange(req.headers.range, blob.size) : undefined;
      reply.header("accept-ranges", "bytes").header("etag", etag).type("application/octet-stream");
      if (range === "unsatisfiable")
        return reply.status(416).header("content-range", `bytes */${blob.size}`).send();
      const [start, end] = range ?? [0, blob.size - 1];
      reply.header("content-length", String(end - start + 1));
      if (range) reply.status(206).header("content-range", `bytes ${start}-${end}/${blob.size}`);
      return reply.send(createReadStream(blob.path, { start, end }));
    },
  );
};

/** One `bytes=a-b` / `bytes=a-` range (what a resumed download sends); several ranges are answered whole. */
function byteRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  const m = header === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return "unsatisfiable";
  return [start, end];
}
