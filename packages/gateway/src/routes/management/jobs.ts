import { Beta9Error, CreateJob, JOB_STATES, JobList, type JobState, JobView } from "@beta9/protocol";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { GatewayContext } from "../../context.ts";
import { cancelJob, jobOf, jobView, submitJob } from "../../jobs/jobs.ts";

const IdParams = Type.Object({ id: Type.String({ pattern: "^job_[a-f0-9]{16}$" }) });
const ListQuery = Type.Object(
  {
    /** Only jobs in these states, comma-separated ("QUEUED,RUNNING"). */
    state: Type.Optional(Type.String({ maxLength: 128 })),
    /** 1 to 500, default 100 (query strings are not coerced: a pattern, then Number()). */
    limit: Type.Optional(Type.String({ pattern: "^([1-9][0-9]?|[1-4][0-9]{2}|500)$" })),
    /** The last id of the previous page. */
    after: Type.Optional(Type.String({ pattern: "^job_[a-f0-9]{16}$" })),
  },
  { additionalProperties: false },
);

/**
 * A workspace's jobs: submit, list, show (with its transitions), cancel. Every route acts on the
 * caller's workspace only; another workspace's job is not found. Submitting takes the `jobs` scope.
 */
export const jobRoutes: FastifyPluginAsyncTypebox<GatewayContext> = async (app, ctx) => {
  const workspaceName = async (id: string) => (await ctx.store.workspaces.byId(id))?.name ?? id;

  app.post(
    "/api/v1/jobs",
    { schema: { body: CreateJob, response: { 200: JobView, 201: JobView } } },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "jobs");
      const { job, created } = await submitJob(ctx.store, caller, req.body);
      ctx.log.info(
        { job_id: job.id, workspace_id: job.workspace_id, priority: job.priority, created },
        created ? `job ${job.id} queued` : `job ${job.id} submitted again (same idempotency key)`,
      );
      return reply.status(created ? 201 : 200).send(jobView(job, await workspaceName(job.workspace_id)));
    },
  );

  app.get("/api/v1/jobs", { schema: { querystring: ListQuery, response: { 200: JobList } } }, async (req) => {
    const caller = await ctx.auth.authenticate(req, ["jobs", "read"]);
    const states = req.query.state?.split(",").filter(Boolean) ?? [];
    for (const s of states) {
      if (!(JOB_STATES as readonly string[]).includes(s)) {
        throw new Beta9Error(
          "bad_request",
          `unknown job state ${JSON.stringify(s)}; choose from ${JOB_STATES.join(", ")}`,
        );
      }
    }
    const limit = req.query.limit ? Number(req.query.limit) : 100;
    const after = req.query.after ? await jobOf(ctx.store, caller.workspaceId, req.query.after) : undefined;
    const rows = await ctx.store.jobs.list(caller.workspaceId, {
      states: states as JobState[],
      limit: limit + 1,
      ...(after ? { before: { created_at: after.created_at, id: after.id } } : {}),
    });
    const name = await workspaceName(caller.workspaceId);
    const page = rows.slice(0, limit);
    return {
      jobs: page.map((j) => jobView(j, name)),
      next: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
    };
  });

  app.get("/api/v1/jobs/:id", { schema: { params: IdParams, response: { 200: JobView } } }, async (req) => {
    const caller = await ctx.auth.authenticate(req, ["jobs", "read"]);
    const job = await jobOf(ctx.store, caller.workspaceId, req.params.id);
    return jobView(job, await workspaceName(job.workspace_id), await ctx.store.jobs.events(job.id));
  });

  app.post(
    "/api/v1/jobs/:id/cancel",
    { schema: { params: IdParams, response: { 200: JobView } } },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, "jobs");
      const job = await jobOf(ctx.store, caller.workspaceId, req.params.id);
      const cancelled = await cancelJob(ctx.store, job, `key ${caller.keyId}`);
      ctx.log.info({ job_id: job.id, key_id: caller.keyId }, `job ${job.id} cancelled`);
      return jobView(cancelled, await workspaceName(job.workspace_id), await ctx.store.jobs.events(job.id));
    },
  );
};
