import type { ReplicaList } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

/** Where the workspace's deployments run right now. */
export class Replicas {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  async list(options?: RequestOptions): Promise<ReplicaList> {
    return this.#http.get("/api/v1/replicas", undefined, options);
  }
}
