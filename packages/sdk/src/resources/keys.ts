import type { ApiKeyList, ApiKeyView, CreateApiKey, SetApiKeyLimits, SetResidency } from "@beta9/protocol";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

/** API keys (`b9_…`) with scopes and a workspace. */
export class ApiKeys {
  readonly #http: Transport;
  constructor(http: Transport) {
    this.#http = http;
  }

  /** The answer's `key` is the secret itself; the gateway keeps only its hash and never shows it again. */
  async create(body: CreateApiKey, options?: RequestOptions): Promise<ApiKeyView> {
    return this.#http.post("/api/v1/keys", body, options);
  }

  /** The caller's workspace's keys, or another workspace's (a key of the default workspace only). */
  async list(filter: { workspace?: string } = {}, options?: RequestOptions): Promise<ApiKeyList> {
    return this.#http.get("/api/v1/keys", { workspace: filter.workspace }, options);
  }

  /** Change a key's per-minute limits (null removes one); applies to its next request. */
  async setLimits(id: string, body: SetApiKeyLimits, options?: RequestOptions): Promise<ApiKeyView> {
    return this.#http.post(`/api/v1/keys/${segment(id)}/limits`, body, options);
  }

  /** Where the key's work may run, within its workspace's (never wider); applies to its next request. */
  async setResidency(id: string, body: SetResidency, options?: RequestOptions): Promise<ApiKeyView> {
    return this.#http.post(`/api/v1/keys/${segment(id)}/residency`, body, options);
  }

  async revoke(id: string, options?: RequestOptions): Promise<ApiKeyView> {
    return this.#http.delete(`/api/v1/keys/${segment(id)}`, options);
  }
}
