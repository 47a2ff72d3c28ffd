import type { Health } from "@beta9/protocol";
import { Inference } from "./inference/inference.ts";
import { Audit } from "./resources/audit.ts";
import { Auth } from "./resources/auth.ts";
import { Deployments } from "./resources/deployments.ts";
import { Jobs } from "./resources/jobs.ts";
import { ApiKeys } from "./resources/keys.ts";
import { Machines } from "./resources/machines.ts";
import { Pools } from "./resources/pools.ts";
import { Replicas } from "./resources/replicas.ts";
import { Reports } from "./resources/reports.ts";
import { JoinTokens } from "./resources/tokens.ts";
import { Usage } from "./resources/usage.ts";
import { Workspaces } from "./resources/workspaces.ts";
import { type Fetch, type RequestOptions, Transport } from "./transport.ts";
import { nodeFetch } from "./transport-node.ts";

export interface ClientOptions {
  /** The gateway, e.g. "http://127.0.0.1:1994"; a bare "host:port" means http. */
  baseUrl: string;
  /** A `b9_…` API key, sent as a bearer token. Management reads need scope read or admin; writes admin. */
  apiKey?: string | undefined;
  /** Replaces the global fetch (tests, proxies, custom agents). */
  fetch?: Fetch | undefined;
  /** A PEM file of the CA that signed the gateway's certificate, when the system does not trust it. */
  caFile?: string | undefined;
  /** How long one management call may take, connection to last byte. Default 30 s. */
  timeoutMs?: number | undefined;
  /**
   * How long an inference call may wait for its answer to begin (a whole answer, when not streamed).
   * A model with no replica running is loaded first, so the default is 10 min.
   */
  inferenceTimeoutMs?: number | undefined;
}

/**
 * Typed client of the Beta9 gateway's management API.
 *
 * ```ts
 * const b9 = new Beta9Client({ baseUrl: "http://127.0.0.1:1994", apiKey: process.env.BETA9_API_KEY });
 * const { token } = await b9.tokens.create({ pool: "gpu", ttl_seconds: 3600 });
 * const { machines } = await b9.machines.list({ pool: "gpu" });
 * await b9.deployments.create({ name: "llama3.2:1b", source: "ollama:llama3.2:1b" });
 * const { groups } = await b9.usage.get({ since: new Date(Date.now() - 86_400_000), group_by: "model" });
 * const { content } = await b9.inference.chat({ model: "llama3.2:1b", messages: [{ role: "user", content: "Hi" }] });
 * ```
 */
export class Beta9Client {
  readonly tokens: JoinTokens;
  readonly machines: Machines;
  readonly pools: Pools;
  readonly workspaces: Workspaces;
  readonly keys: ApiKeys;
  readonly deployments: Deployments;
  readonly replicas: Replicas;
  readonly usage: Usage;
  /** Documentation from recorded facts (the EU AI Act pack). */
  readonly reports: Reports;
  readonly audit: Audit;
  /** Single sign-on's device flow and refresh, and ending a session. */
  readonly auth: Auth;
  /** Commands run on a machine that fits: submit, follow, cancel, fetch outputs. */
  readonly jobs: Jobs;
  /** Calling models: chat, generate, embed, listModels. */
  readonly inference: Inference;
  readonly #http: Transport;

  constructor(options: ClientOptions) {
    this.#http = new Transport({ ...options, fetch: options.fetch ?? nodeFetch(options.caFile) });
    this.tokens = new JoinTokens(this.#http);
    this.machines = new Machines(this.#http);
    this.pools = new Pools(this.#http);
    this.workspaces = new Workspaces(this.#http);
    this.keys = new ApiKeys(this.#http);
    this.deployments = new Deployments(this.#http);
    this.replicas = new Replicas(this.#http);
    this.usage = new Usage(this.#http);
    this.reports = new Reports(this.#http);
    this.audit = new Audit(this.#http);
    this.auth = new Auth(this.#http);
    this.jobs = new Jobs(this.#http);
    this.inference = new Inference(this.#http, options.inferenceTimeoutMs);
  }

  /** The normalized gateway URL this client talks to. */
  get baseUrl(): string {
    return this.#http.baseUrl;
  }

  /** Needs no API key; answers whether the gateway is up and which version it runs. */
  health(options?: RequestOptions): Promise<Health> {
    return this.#http.get("/health", undefined, options);
  }
}
