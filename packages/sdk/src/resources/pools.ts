import type { CreatePool, PoolList, PoolView } from "@beta9/protocol";
import type { RequestOptions, Transport } from "../transport.ts";

/** Pools group machines; join tokens and scheduling are per pool. */
export class Pools {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  async list(options?: RequestOptions): Promise<PoolList> {
    return this.#http.get("/api/v1/pools", undefined, options);
  }

  async create(body: CreatePool, options?: RequestOptions): Promise<PoolView> {
    return this.#http.post("/api/v1/pools", body, options);
  }
}
