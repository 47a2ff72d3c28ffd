import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { AGENT_BLOB_PATH, AGENT_CONVERTED_PATH, Beta9Error } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { type HfModelDir, listConvertedDirs, safetensorsDir } from "../models/convert/gguf-to-hf.ts";
import { CONVERSION_FILE } from "../models/convert/hf-tools.ts";
import { mlxDir } from "../models/convert/to-mlx.ts";
import type { ModelStore } from "../models/store.ts";

export interface BlobRoutesContext {
  store: ModelStore;
  fromGateway: (req: FastifyRequest) => boolean;
}

const SHA256 = /^[a-f0-9]{64}$/;
const OWNER = /^[A-Za-z0-9:_-]{1,128}$/;

/**
 * `GET AGENT_BLOB_PATH/<sha256>?owner=…` (a converted GGUF) and `GET AGENT_CONVERTED_PATH/<sha256>/<file>`
 * (a file of a converted directory, or its b9-conversion.json): a conversion's bytes, for the gateway
 * to relay to another machine of the pool that would otherwise convert the same model again. Only over
 * the channel (the gateway checked who asks), only a conversion stored for that owner, with Range for
 * a resumed copy.
 */
export const blobRoutes: FastifyPluginAsyncTypebox<BlobRoutesContext> = async (app, ctx) => {
  app.get<{ Params: { sha256: string }; Querystring: { owner?: string } }>(
    `${AGENT_BLOB_PATH}/:sha256`,
    async (req, reply) => {
      const { sha256, owner } = checked(req, ctx);
      const blob = await ctx.store.convertedBlob(sha256, owner);
      if (!blob)
        throw new Beta9Error(
          "model_not_found",
          `no conversion with sha256 ${sha256} is stored here for that owner`,
        );
      return sendFile(req, reply, blob.path, blob.size, sha256);
    },
  );

  app.get<{ Params: { sha256: string; file: string }; Querystring: { owner?: string } }>(
    `${AGENT_CONVERTED_PATH}/:sha256/:file`,
    async (req, reply) => {
      const { sha256, owner } = checked(req, ctx);
      const { file } = req.params;
      const dir = await convertedDir(ctx.store, sha256, owner);
      // Only what its b9-conversion.json lists, and that file itself: never another path of the machine.
      const listed = file === CONVERSION_FILE ? undefined : dir?.files.find((f) => f.name === file);
      if (!dir || (file !== CONVERSION_FILE && !listed))
        throw new Beta9Error(
          "model_not_found",
          `no converted directory ${sha256} with ${file} is stored here for that owner`,
        );
      const path = join(dir.dir, file);
      const size = listed?.size ?? (await stat(path)).size;
      return sendFile(req, reply, path, size, listed?.sha256 ?? sha256);
    },
  );
};

/** Only the gateway asks (over the channel), for a well-formed sha256 and owner (absent: the machine's). */
function checked(
  req: FastifyRequest<{ Params: { sha256: string }; Querystring: { owner?: string } }>,
  ctx: BlobRoutesContext,
): { sha256: string; owner: string | null } {
  if (!ctx.fromGateway(req))
    throw new Beta9Error("forbidden", "a conversion's bytes go only to the gateway, over the agent channel");
  const { sha256 } = req.params;
  const owner = req.query.owner;
  if (!SHA256.test(sha256) || (owner !== undefined && !OWNER.test(owner)))
    throw new Beta9Error("bad_request", "give the conversion's sha256 (64 hex digits) and its owner's id");
  return { sha256, owner: owner ?? null };
}

/** A kept directory conversion (safetensors for vLLM/SGLang, or MLX) with that sha256, of that owner. */
async function convertedDir(
  store: ModelStore,
  sha256: string,
  owner: string | null,
): Promise<HfModelDir | undefined> {
  for (const root of [safetensorsDir(store), mlxDir(store)]) {
    const dir = (await listConvertedDirs(store, root)).find((d) => d.sha256 === sha256 && d.owner === owner);
    if (dir) return dir;
  }
  return undefined;
}

/** The file, whole or the one range asked (If-Range on its etag), as a resumed download wants it. */
function sendFile(req: FastifyRequest, reply: FastifyReply, path: string, size: number, tag: string) {
  const etag = `"${tag}"`;
  const ifRange = req.headers["if-range"];
  const range = ifRange === undefined || ifRange === etag ? byteRange(req.headers.range, size) : undefined;
  reply.header("accept-ranges", "bytes").header("etag", etag).type("application/octet-stream");
  if (range === "unsatisfiable") return reply.status(416).header("content-range", `bytes */${size}`).send();
  const [start, end] = range ?? [0, size - 1];
  reply.header("content-length", String(end - start + 1));
  if (range) reply.status(206).header("content-range", `bytes ${start}-${end}/${size}`);
  // An empty file has no byte range to read.
  return reply.send(size === 0 ? "" : createReadStream(path, { start, end }));
}

/** One `bytes=a-b` / `bytes=a-` range (what a resumed download sends); several ranges are answered whole. */
function byteRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  const m = header === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return "unsatisfiable";
  return [start, end];
}
