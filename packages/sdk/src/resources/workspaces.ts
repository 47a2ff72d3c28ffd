import type {
  CreateWorkspace,
  SetResidency,
  SetWorkspaceLimits,
  SetWorkspaceSettings,
  WorkspaceList,
  WorkspaceRemoved,
  WorkspaceView,
} from "@beta9/protocol";
import { type RequestOptions, segment, type Transport } from "../transport.ts";

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

  /** Per-minute limits for all the workspace's keys together (null removes one); the operator only. */
  async setLimits(name: string, body: SetWorkspaceLimits, options?: RequestOptions): Promise<WorkspaceView> {
    return this.#http.post(`/api/v1/workspaces/${segment(name)}/limits`, body, options);
  }

  /** Where the workspace's work may run (region eu and/or countries); the operator only. */
  async setResidency(name: string, body: SetResidency, options?: RequestOptions): Promise<WorkspaceView> {
    return this.#http.post(`/api/v1/workspaces/${segment(name)}/residency`, body, options);
  }

  /**
   * The workspace's settings: `audit_content` keeps prompts and answers in its inference audit events
   * (personal data: the workspace's GDPR choice). Its own admins or the operator.
   */
  async setSettings(
    name: string,
    body: SetWorkspaceSettings,
    options?: RequestOptions,
  ): Promise<WorkspaceView> {
    return this.#http.post(`/api/v1/workspaces/${segment(name)}/settings`, body, options);
  }

  /** Remove a workspace with its deployments and API keys (not `default`). */
  async remove(name: string, options?: RequestOptions): Promise<WorkspaceRemoved> {
    return this.#http.delete(`/api/v1/workspaces/${segment(name)}`, options);
  }
}
