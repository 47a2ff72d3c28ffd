import {
  Beta9Error,
  CreateJob,
  JOB_STATES,
  JobInputUploaded,
  JobList,
  type JobLogLine,
  JobOutputList,
  type JobState,
  JobView,
  MAX_JOB_INPUT_BYTES,
} from "@beta9/protocol";
import type { JobLog, Store } from "@beta9/store";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { narrowSpec } from "../../auth/residency.ts";
import type { GatewayContext } from "../../context.ts";
import { clientGone } from "../../http/client-gone.ts";
import { sendNdjson } from "../../http/ndjson-reply.ts";
import { cancelJob, checkJob, jobOf, jobView, submitJob, uploadInput } from "../../jobs/jobs.ts";
import { endedForGood } from "../../jobs/needs.ts";
import type { JobScheduler } from "../../jobs/scheduler.ts";
import { type BodyBudget, callerOf, inferenceBody } from "../../limits/request-body.ts";

export interface JobRouteContext extends GatewayContext {
  jobs: JobScheduler;
  /** Request bodies held at once, gateway-wide (inputs count against it). */
  bodyBudget: BodyBudget;
  /** How long a client following logs may leave them untaken before its stream is ended. */
  clientStallMs: number;
}

const IdParams = Type.Object({ id: Type.String({ pattern: "^job_[a-f0-9]{16}$" }) });
const OutputParams = Type.Object({ id: Type.String({ pattern: "^job_[a-f0-9]{16}$" }), "*": Type.String() });
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
const LogsQuery = Type.Object(
  {
    /** Lines after line N (default 0: from the first). */
    after: Type.Optional(Type.String({ pattern: "^[0-9]{1,12}$" })),
    /** "true": wait for more lines until the job has ended. */
    follow: Type.Optional(Type.Union([Type.Literal("true"), Type.Literal("false")])),
  },
  { additionalProperties: false },
);
/** What each run of a job used on its machine: its runtime × the CPUs and GPUs the job asked for. */
const JobUsageList = Type.Object({
  runs: Type.Array(
    Type.Object({
      attempt: Type.Integer(),
      machine_id: Type.String(),
      started_at: Type.String({ format: "date-time" }),
      ended_at: Type.String({ format: "date-time" }),
      cpu_seconds: Type.Number(),
      gpu_seconds: Type.Number(),
      /** The run's energy and carbon (null when its machine measured none), as in the carbon report. */
      energy_wh: Type.Union([Type.Number(), Type.Null()]),
      energy_method: Type.Union([Type.String(), Type.Null()]),
      co2e_g: Type.Union([Type.Number(), Type.Null()]),
    }),
  ),
});
/** A follower with nothing new checks the store this often (a run followed by another replica). */
const LOG_POLL_MS = 1_000;
// Lines read from the store at a time per reader: at most MAX_JOB_LOG_LINE_BYTES each, so a page is bounded too.
const LOG_PAGE = 100;

/** Whether the job has ended for good: not LOST or FAILED with a retry about to queue it again. */
const over = endedForGood;

/**
 * A workspace's jobs: submit, list, show (with its transitions), cancel, inputs, logs and outputs.
 * Every route acts on the caller's workspace only; another workspace's job is not found. Reading
 * takes the `jobs` or `read` scope, acting the `jobs` scope.
 */
export const jobRoutes: FastifyPluginAsyncTypebox<JobRouteContext> = async (app, ctx) => {
  const workspaceName = async (id: string) => (await ctx.store.workspaces.byId(id))?.name ?? id;

  app.post(
    "/api/v1/jobs",
    { schema: { body: CreateJob, response: { 200: JobView, 201: JobView } } },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, "jobs");
      // Stored narrowed to the caller's residency, so the queue places it only there.
      const spec = narrowSpec(req.body, caller.residency, "this job");
      await checkJob(ctx.store, caller.workspaceId, spec);
      const { job, created } = await submitJob(ctx.store, caller, spec, Date.now(), req.id);
      req.log.info(
        { job_id: job.id, workspace_id: job.workspace_id, priority: job.priority, created },
        created ? `job ${job.id} queued` : `job ${job.id} submitted again (same idempotency key)`,
      );
      if (created) ctx.jobs.nudge();
      return reply.status(created ? 201 : 200).send(jobView(job, await workspaceName(job.workspace_id)));
    },
  );

  // Raw bytes: parsed only here (content-type parsers are scoped to this plugin).
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer" }, (_req, body, done) =>
    done(null, body),
  );
  app.post(
    "/api/v1/jobs/inputs",
    {
      ...inferenceBody(ctx.auth, ctx.bodyBudget, MAX_JOB_INPUT_BYTES, "jobs"),
      schema: { response: { 201: JobInputUploaded } },
    },
    async (req, reply) => {
      const caller = callerOf(req);
      if (!Buffer.isBuffer(req.body))
        throw new Beta9Error(
          "bad_request",
          "send the input's bytes with content-type application/octet-stream",
        );
      const uploaded = await uploadInput(ctx.store, caller.workspaceId, req.body);
      return reply.status(201).send(uploaded);
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
      // A run on a machine is stopped there (by the replica following it, if not this one).
      await ctx.jobs.cancel(job.id);
      ctx.jobs.feed.notify(job.id);
      return jobView(cancelled, await workspaceName(job.workspace_id), await ctx.store.jobs.events(job.id));
    },
  );

  app.get(
    "/api/v1/jobs/:id/logs",
    { schema: { params: IdParams, querystring: LogsQuery } },
    async (req, reply) => {
      const caller = await ctx.auth.authenticate(req, ["jobs", "read"]);
      const job = await jobOf(ctx.store, caller.workspaceId, req.params.id);
      // A client that stops reading is cut off after the stall timeout: the stream holds one page at most.
      const client = clientGone(reply, ctx.clientStallMs);
      try {
        await sendNdjson(
          reply,
          logLines(ctx, job.id, Number(req.query.after ?? 0), req.query.follow === "true", client.signal),
          (err) => ({ error: { code: "internal", message: (err as Error).message } }),
          // A follower of a queued job learns at once that it is answered, not at the first line.
          { headersFirst: req.query.follow === "true" },
        );
      } finally {
        client.dispose();
      }
    },
  );

  app.get(
    "/api/v1/jobs/:id/outputs",
    { schema: { params: IdParams, response: { 200: JobOutputList } } },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, ["jobs", "read"]);
      const job = await jobOf(ctx.store, caller.workspaceId, req.params.id);
      const outputs = await ctx.store.jobRuns.outputs(job.id);
      return { outputs: outputs.map((o) => ({ name: o.name, sha256: o.sha256, size: o.size })) };
    },
  );

  app.get(
    "/api/v1/jobs/:id/usage",
    { schema: { params: IdParams, response: { 200: JobUsageList } } },
    async (req) => {
      const caller = await ctx.auth.authenticate(req, ["jobs", "read"]);
      const job = await jobOf(ctx.store, caller.workspaceId, req.params.id);
      const runs = await ctx.store.jobRuns.usage(job.id);
      return {
        runs: runs.map((r) => ({
          attempt: r.attempt,
          machine_id: r.machine_id,
          started_at: new Date(Number(r.started_at)).toISOString(),
          ended_at: new Date(Number(r.ended_at)).toISOString(),
          cpu_seconds: Number(r.cpu_seconds),
          gpu_seconds: Number(r.gpu_seconds),
          energy_wh: r.energy_wh === null ? null : Number(r.energy_wh),
          energy_method: r.energy_method,
          co2e_g: r.co2e_g === null ? null : Number(r.co2e_g),
        })),
      };
    },
  );

  app.get("/api/v1/jobs/:id/outputs/*", { schema: { params: OutputParams } }, async (req, reply) => {
    const caller = await ctx.auth.authenticate(req, ["jobs", "read"]);
    const job = await jobOf(ctx.store, caller.workspaceId, req.params.id);
    const name = req.params["*"];
    const output = (await ctx.store.jobRuns.outputs(job.id)).find((o) => o.name === name);
    const blob = output && (await ctx.store.jobRuns.blob(job.workspace_id, output.sha256));
    if (!output || !blob)
      throw new Beta9Error(
        "not_found",
        `job ${job.id} has no output ${name}; \`b9 job outputs ${job.id}\` lists them`,
      );
    return reply
      .header("content-type", "application/octet-stream")
      .header("x-beta9-sha256", output.sha256)
      .send(Buffer.from(blob.data, "base64"));
  });
};

/**
 * A job's log lines after line `after`, a page at a time (read as the client takes them, so a slow
 * client holds back only its own reads); with `follow`, waits for more until the job has ended for good.
 * Lines dropped from the middle of a long log are announced by one line in their place.
 */
async function* logLines(
  ctx: { store: Store; jobs: JobScheduler },
  jobId: string,
  after: number,
  follow: boolean,
  signal: AbortSignal,
): AsyncGenerator<JobLogLine> {
  for (;;) {
    // The job's state first: lines written before it ended are all read below.
    const job = await ctx.store.jobs.get(jobId);
    let rows: JobLog[];
    do {
      rows = await ctx.store.jobRuns.logs(jobId, after, LOG_PAGE);
      for (const r of rows) {
        if (r.seq > after + 1) {
          yield {
            seq: r.seq - 1,
            at: new Date(r.at).toISOString(),
            attempt: r.attempt,
            stream: "stderr",
            line: `[b9] ${r.seq - 1 - after} lines dropped here: the gateway keeps the first and the last lines of a job`,
          };
        }
        yield {
          seq: r.seq,
          at: new Date(r.at).toISOString(),
          attempt: r.attempt,
          stream: r.stream as JobLogLine["stream"],
          line: r.line,
        };
        after = r.seq;
      }
    } while (rows.length === LOG_PAGE);
    if (!follow || !job || over(job) || signal.aborted) return;
    await ctx.jobs.feed.wait(jobId, LOG_POLL_MS, signal);
  }
}
