import type { CreateDeployment, DeploymentList, DeploymentPullEvent, DeploymentView } from "@beta9/protocol";
import { errorOf, StreamError } from "../errors.ts";
import { ndjsonLines } from "../streaming/ndjson.ts";
import { Stream } from "../streaming/stream.ts";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

/** Fetching a large model can take long before the first progress line; the lines then keep coming. */
const PULL_START_TIMEOUT_MS = 10 * 60_000;

/**
 * Models the caller's workspace keeps servable. Names are as clients call the model
 * ("llama3.2:1b", "library/qwen2.5:7b"); they are URL-encoded here, so pass them as they are.
 */
export class Deployments {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** Needs the admin scope. Unset fields get the gateway's defaults (scale to zero, one replica). */
  async create(body: CreateDeployment, options?: RequestOptions): Promise<DeploymentView> {
    return this.#http.post("/api/v1/deployments", body, options);
  }

  /** `workspace`: another workspace's (a key of the default workspace only). */
  async list(filter: { workspace?: string } = {}, options?: RequestOptions): Promise<DeploymentList> {
    return this.#http.get("/api/v1/deployments", { workspace: filter.workspace }, options);
  }

  async get(
    name: string,
    filter: { workspace?: string } = {},
    options?: RequestOptions,
  ): Promise<DeploymentView> {
    return this.#http.get(`/api/v1/deployments/${segment(name)}`, { workspace: filter.workspace }, options);
  }

  /**
   * Has the machines that will serve the deployment fetch its model now, ahead of the first request,
   * as a stream of progress events (per machine; bytes in `completed` of `total` while they move); the
   * last one has status "success" and the `machines` that have it. A failure is thrown as a
   * StreamError with its code. Stopping the stream stops the pulls. Needs the inference scope.
   *
   * ```ts
   * for await (const p of b9.deployments.pull("llama3.2:1b")) console.log(p.status, p.completed, p.total);
   * ```
   */
  pull(name: string, options?: RequestOptions): Stream<DeploymentPullEvent> {
    const path = `/api/v1/deployments/${segment(name)}/pull`;
    return new Stream(
      (signal) =>
        this.#http.open({
          method: "POST",
          path,
          options: { signal },
          accept: "application/x-ndjson",
          timeoutMs: PULL_START_TIMEOUT_MS,
        }),
      pullProgress,
      { baseUrl: this.#http.baseUrl, signal: options?.signal },
    );
  }

  /** Needs the admin scope; `workspace` as for list. */
  async remove(name: string, filter: { workspace?: string } = {}, options?: RequestOptions): Promise<void> {
    const query = filter.workspace === undefined ? "" : `?workspace=${encodeURIComponent(filter.workspace)}`;
    await this.#http.delete<undefined>(`/api/v1/deployments/${segment(name)}${query}`, options);
  }
}

async function* pullProgress(body: AsyncIterable<Uint8Array>): AsyncGenerator<DeploymentPullEvent> {
  for await (const line of ndjsonLines(body)) {
    let progress: DeploymentPullEvent;
    try {
      progress = JSON.parse(line) as DeploymentPullEvent;
    } catch {
      throw new StreamError(200, "invalid_response", `a progress line is not JSON: ${line.slice(0, 80)}`);
    }
    const error = progress.status === "error" || "error" in progress ? errorOf(progress) : undefined;
    if (error) throw new StreamError(200, error.code || "download_failed", error.message);
    yield progress;
    if (progress.status === "success") return;
  }
  throw new StreamError(
    200,
    "stream_incomplete",
    "the pull's progress stream ended before it said success; see b9 model ps, then pull again",
  );
}
