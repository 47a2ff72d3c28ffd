import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { AgentJobList, JobAssignment, MAX_JOB_INPUT_BYTES } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { JobManager } from "./manager.ts";
import type { RunLog } from "./run-log.ts";

/**
 * The agent's job endpoints, reached by the gateway over the agent channel (packages/protocol's
 * jobs.ts lists them). Authenticated like the rest of the control API: the channel, or the
 * machine credential for a local caller (installControlAuth covers every route).
 */
export const jobRoutes: FastifyPluginAsyncTypebox<{ jobs: JobManager }> = async (app, { jobs }) => {
  const Id = Type.Object({ id: Type.String() });

  app.post(
    "/jobs",
    // Inputs travel base64 in the assignment: room for the cap, a third more, and the spec.
    { schema: { body: JobAssignment }, bodyLimit: Math.ceil(MAX_JOB_INPUT_BYTES * 1.4) + 1024 * 1024 },
    async (req, reply) => {
      const run = await jobs.start(req.body);
      return reply.type("application/x-ndjson").send(follow(run, 0));
    },
  );

  app.get("/jobs", { schema: { response: { 200: AgentJobList } } }, async () => jobs.list());

  app.get(
    "/jobs/:id/events",
    {
      schema: {
        params: Id,
        // Query values arrive as text: digits only.
        querystring: Type.Object({ after: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })) }),
      },
    },
    async (req, reply) =>
      reply.type("application/x-ndjson").send(follow(jobs.get(req.params.id), Number(req.query.after ?? 0))),
  );

  app.post("/jobs/:id/cancel", { schema: { params: Id } }, async (req) => {
    const state = await jobs.cancel(req.params.id);
    return { job_id: req.params.id, state };
  });

  app.get(
    "/jobs/:id/outputs/*",
    { schema: { params: Type.Object({ id: Type.String(), "*": Type.String() }) } },
    async (req, reply) => {
      const path = jobs.outputPath(req.params.id, req.params["*"]);
      return reply.type("application/octet-stream").send(createReadStream(path));
    },
  );

  app.delete("/jobs/:id", { schema: { params: Id } }, async (req, reply) => {
    await jobs.delete(req.params.id);
    return reply.code(204).send();
  });
};

/**
 * The run's events after `after`, one JSON line each, following until the run ends. Read at the
 * reader's pace from the run's own (bounded) list: a slow reader holds nothing extra in memory
 * and never slows the job.
 */
export function follow(run: RunLog, after: number): Readable {
  let next = run.events.findIndex((e) => e.seq > after);
  if (next < 0) next = run.events.length;
  // Whether the reader asked for more than it got: then a new event is pushed at once.
  let wanted = false;
  let done = false;
  const pump = () => {
    while (wanted && next < run.events.length)
      wanted = stream.push(`${JSON.stringify(run.events[next++])}\n`);
    if (!done && next >= run.events.length && run.ended) {
      done = true;
      stream.push(null);
    }
  };
  const stream = new Readable({
    read() {
      wanted = true;
      pump();
    },
    destroy(error, callback) {
      run.off("event", pump);
      callback(error);
    },
  });
  run.on("event", pump);
  run.readers.add(stream);
  stream.once("end", () => run.off("event", pump));
  stream.once("close", () => run.readers.delete(stream));
  return stream;
}
