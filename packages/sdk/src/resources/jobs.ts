import {
  type CreateJob,
  JOB_ENDED,
  type JobInputUploaded,
  type JobList,
  type JobLogLine,
  type JobOutputList,
  type JobState,
  type JobView,
} from "@beta9/protocol";
import { errorOf, StreamError } from "../errors.ts";
import { ndjsonLines } from "../streaming/ndjson.ts";
import { Stream } from "../streaming/stream.ts";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

export interface JobListFilter {
  /** Only jobs in these states. */
  state?: JobState | readonly JobState[] | undefined;
}

export interface JobLogOptions extends RequestOptions {
  /** Only lines after this one (a line's `seq`); 0 or absent: from the first. */
  after?: number | undefined;
  /** Keep the stream open for new lines until the job ends. */
  follow?: boolean | undefined;
}

/** Uploads and downloads move whole files; a slow link gets longer than a JSON call. */
const TRANSFER_TIMEOUT_MS = 10 * 60_000;

/**
 * True once a job has ended for good: in an end state (JOB_ENDED) with no retry to come, which a
 * LOST or FAILED job with attempts left has (the gateway queues it again).
 */
export const jobEnded = (
  job: Pick<JobView, "state" | "attempt" | "max_retries"> & { ended?: boolean | undefined },
): boolean =>
  // The gateway says (it knows the job's retry_on); a view without it is judged by its retries.
  job.ended ??
  (JOB_ENDED.has(job.state) &&
    !((job.state === "LOST" || job.state === "FAILED") && job.attempt <= job.max_retries));

/**
 * The caller's workspace's jobs: commands (or Python functions, through the Python SDK) run on a
 * machine that fits. Submitting, following and cancelling need the `jobs` scope; reads also `read`.
 *
 * ```ts
 * const { sha256 } = await b9.jobs.uploadInput(await readFile("data.csv"));
 * const job = await b9.jobs.create({ command: ["python3", "train.py"], inputs: [{ name: "data.csv", sha256 }] });
 * for await (const l of b9.jobs.logs(job.id, { follow: true })) console.log(l.line);
 * const { outputs } = await b9.jobs.outputs(job.id);
 * ```
 */
export class Jobs {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** Queues a job; with an `idempotency_key` the gateway seen before answers the job it made then. */
  async create(spec: CreateJob, options?: RequestOptions): Promise<JobView> {
    return this.#http.post("/api/v1/jobs", spec, options);
  }

  /** One page of jobs, newest first; pass `after: page.next` for the following one. */
  async list(
    filter: JobListFilter & { limit?: number | undefined; after?: string | undefined } = {},
    options?: RequestOptions,
  ): Promise<JobList> {
    const states = typeof filter.state === "string" ? [filter.state] : filter.state;
    return this.#http.get(
      "/api/v1/jobs",
      {
        state: states?.length ? states.join(",") : undefined,
        limit: filter.limit?.toString(),
        after: filter.after,
      },
      options,
    );
  }

  /** A job with its transitions (`events`, oldest first). */
  async get(id: string, options?: RequestOptions): Promise<JobView> {
    return this.#http.get(`/api/v1/jobs/${segment(id)}`, undefined, options);
  }

  /** Stops a job (a running one gets SIGTERM, then SIGKILL); one that has ended is a ConflictError. */
  async cancel(id: string, options?: RequestOptions): Promise<JobView> {
    return this.#http.post(`/api/v1/jobs/${segment(id)}/cancel`, undefined, options);
  }

  /**
   * The job's output lines (stdout and stderr, numbered by `seq` across attempts), as a stream; with
   * `follow` it stays open until the job ends. Resume a broken stream with `after` = the last `seq`.
   */
  logs(id: string, options: JobLogOptions = {}): Stream<JobLogLine> {
    const path = `/api/v1/jobs/${segment(id)}/logs`;
    const query = {
      after: options.after ? String(options.after) : undefined,
      follow: options.follow ? "true" : undefined,
    };
    return new Stream(
      (signal) =>
        this.#http.open({ method: "GET", path, query, options: { signal }, accept: "application/x-ndjson" }),
      logLines,
      { baseUrl: this.#http.baseUrl, signal: options.signal },
    );
  }

  /** The files the job left under $B9_OUTPUT_DIR, with their sha256 and size. */
  async outputs(id: string, options?: RequestOptions): Promise<JobOutputList> {
    return this.#http.get(`/api/v1/jobs/${segment(id)}/outputs`, undefined, options);
  }

  /** One output's bytes, as a stream of chunks (for large files: write them as they come). */
  outputStream(id: string, name: string, options?: RequestOptions): Stream<Uint8Array> {
    const path = `/api/v1/jobs/${segment(id)}/outputs/${outputPath(name)}`;
    return new Stream(
      (signal) =>
        this.#http.open({
          method: "GET",
          path,
          options: { signal },
          accept: "application/octet-stream",
          timeoutMs: TRANSFER_TIMEOUT_MS,
        }),
      (body) => body,
      { baseUrl: this.#http.baseUrl, signal: options?.signal },
    );
  }

  /** One output's bytes, whole. */
  async output(id: string, name: string, options?: RequestOptions): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.outputStream(id, name, options)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  /** Uploads a file for jobs' `inputs`: the answer's sha256 names it in a spec. */
  async uploadInput(bytes: Uint8Array, options?: RequestOptions): Promise<JobInputUploaded> {
    return this.#http.request({
      method: "POST",
      path: "/api/v1/jobs/inputs",
      bytes,
      options,
      timeoutMs: TRANSFER_TIMEOUT_MS,
    });
  }

  /** Waits until the job has ended (polling every `intervalMs`, 1 s by default) and returns it. */
  async wait(id: string, options: RequestOptions & { intervalMs?: number } = {}): Promise<JobView> {
    for (;;) {
      const job = await this.get(id, options);
      if (jobEnded(job)) return job;
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          clearTimeout(timer);
          reject(options.signal?.reason);
        };
        // The listener goes with its pause, so a long wait does not pile them up on the signal.
        const timer = setTimeout(() => {
          options.signal?.removeEventListener("abort", stop);
          resolve();
        }, options.intervalMs ?? 1000);
        options.signal?.addEventListener("abort", stop, { once: true });
      });
    }
  }
}

/** An output's name may have folders ("plots/a.png"): each part is encoded, the slashes kept. */
function outputPath(name: string): string {
  return name.split("/").map(segment).join("/");
}

async function* logLines(body: AsyncIterable<Uint8Array>): AsyncGenerator<JobLogLine> {
  for await (const text of ndjsonLines(body)) {
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      throw new StreamError(200, "invalid_response", `a log line is not JSON: ${text.slice(0, 80)}`);
    }
    const error = errorOf(line);
    if (error) throw new StreamError(200, error.code || "logs_failed", error.message);
    yield line as JobLogLine;
  }
}
