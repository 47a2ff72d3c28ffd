import type { CreateWorkspace, WorkspaceList, WorkspaceView } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

/** Workspaces hold deployments, API keys and usage; the operator (an admin of `default`) makes them. */
export class Workspaces {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** Every workspace for the operator; the caller's own for any other key. */
  async list(options?: RequestOptions): Promise<WorkspaceList> {
    return this.#http.get("/api/v1/workspaces", undefined, options);
  }

  async create(body: CreateWorkspace, options?: RequestOptions): Promise<WorkspaceView> {
    return this.#http.post("/api/v1/workspaces", body, options);
  }
}
