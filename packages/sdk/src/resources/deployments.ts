import type { CreateDeployment, DeploymentList, DeploymentView } from "@beta9/protocol";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

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

  async list(options?: RequestOptions): Promise<DeploymentList> {
    return this.#http.get("/api/v1/deployments", undefined, options);
  }

  async get(name: string, options?: RequestOptions): Promise<DeploymentView> {
    return this.#http.get(`/api/v1/deployments/${segment(name)}`, undefined, options);
  }

  /** Needs the admin scope. */
  async remove(name: string, options?: RequestOptions): Promise<void> {
    await this.#http.delete<undefined>(`/api/v1/deployments/${segment(name)}`, options);
  }
}
