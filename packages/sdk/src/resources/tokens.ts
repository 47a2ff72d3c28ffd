import type { CreateJoinToken, JoinTokenList, JoinTokenView } from "@beta9/protocol";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

/** Join tokens: pool-scoped, expiring, limited-use secrets with which an agent joins a machine. */
export class JoinTokens {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** The answer's `token` is the secret itself; the gateway keeps only its hash and never shows it again. */
  async create(body: CreateJoinToken = {}, options?: RequestOptions): Promise<JoinTokenView> {
    return this.#http.post("/api/v1/tokens", body, options);
  }

  async list(options?: RequestOptions): Promise<JoinTokenList> {
    return this.#http.get("/api/v1/tokens", undefined, options);
  }

  async revoke(id: string, options?: RequestOptions): Promise<JoinTokenView> {
    return this.#http.delete(`/api/v1/tokens/${segment(id)}`, options);
  }
}
