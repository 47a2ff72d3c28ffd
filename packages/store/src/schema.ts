import type { Generated } from "kysely";

/*
 * Table shapes. Times are integer milliseconds since the epoch in both dialects (PostgreSQL `bigint`
 * is parsed to a JS number), so rows read the same whatever the store. Flags are nullable timestamps
 * rather than booleans, which SQLite lacks.
 */

export interface WorkspaceTable {
  id: string;
  name: string;
  created_at: number;
  /** Requests per minute for all the workspace's keys together; null for none. */
  rpm_limit: number | null;
  /** Tokens (prompt + completion) per minute for all its keys together; null for none. */
  tpm_limit: number | null;
  /** Jobs it may have on machines at once; null for none. */
  max_jobs: number | null;
  /** GPU-hours its jobs may use in any 24 hours; null for no limit. */
  gpu_hours_per_day: number | null;
  /** Residency: "eu" or null; with `countries`, where its work may run. */
  region: Generated<string | null>;
  /** Comma-separated ISO 3166-1 alpha-2 codes; "" for no list. */
  countries: Generated<string>;
  /** Since when its inference audit events keep the prompt and the answer (its GDPR choice); null: never. */
  audit_content_since: Generated<number | null>;
}

export interface PoolTable {
  name: string;
  description: string;
  created_at: number;
}

export interface JoinTokenTable {
  id: string;
  token_hash: string;
  pool: string;
  description: string;
  expires_at: number;
  uses_total: number;
  uses_left: number;
  revoked_at: number | null;
  created_at: number;
  /** ISO 3166-1 alpha-2 code the operator binds to the machines joining with it; null for none. */
  country: Generated<string | null>;
}

export interface MachineTable {
  id: string;
  name: string;
  pool: string;
  hostname: string;
  agent_version: string;
  /** JSON of protocol `Hardware`. */
  hardware: string;
  credential_hash: string;
  /** "channel" or "keepalive": how the agent talks to us. */
  protocol: string;
  cordoned_at: number | null;
  draining_at: number | null;
  joined_at: number;
  last_heartbeat_at: number | null;
  join_token_id: string | null;
  /** ISO 3166-1 alpha-2 code the operator set (join token or `b9 machine set`), or null: placement reads only this. */
  country: string | null;
  /** What the agent said of itself at join (b9agent init --country): shown, never used to place work. */
  declared_country: Generated<string | null>;
  /** Power usage effectiveness of its site (1.0 to 3.0), operator-set; 1.0 for a home machine. */
  pue: Generated<number>;
  /** When its cordon, drain, country or PUE was last set (ms; 0: not since this column came). */
  flags_changed_at: Generated<number>;
}

/** A machine removed, and when: replicas read these rather than list every machine. */
export interface MachineRemovalTable {
  id: string;
  removed_at: number;
}

export interface ApiKeyTable {
  id: string;
  name: string;
  workspace_id: string;
  /** Comma-separated scopes. */
  scopes: string;
  key_hash: string;
  prefix: string;
  revoked_at: number | null;
  created_at: number;
  last_used_at: number | null;
  /** Requests per minute allowed; null for no limit. */
  rpm_limit: number | null;
  /** Tokens (prompt + completion) per minute allowed; null for no limit. */
  tpm_limit: number | null;
  /** Residency, within its workspace's: "eu" or null. */
  region: Generated<string | null>;
  /** Comma-separated ISO 3166-1 alpha-2 codes; "" for no list. */
  countries: Generated<string>;
  /** "key", or "session" (a signed-in person's credential, never listed among keys). */
  kind: Generated<string>;
  /** When a session ends (ms); null for keys. */
  expires_at: Generated<number | null>;
  /** The key a dashboard session was opened with (its scopes, limits and revocation apply). */
  parent_id: Generated<string | null>;
  /** A single sign-on identity: provider, subject, the name shown. */
  issuer: Generated<string | null>;
  subject: Generated<string | null>;
  display_name: Generated<string | null>;
  /** The CLI's refresh token, hashed, and until when it may be used. */
  refresh_hash: Generated<string | null>;
  refresh_expires_at: Generated<number | null>;
  /** The provider's refresh token, sealed under the CLI's refresh token. */
  upstream_refresh: Generated<string | null>;
}

/** A model a workspace keeps servable; (workspace_id, name) is the key. */
export interface DeploymentTable {
  workspace_id: string;
  name: string;
  source: string;
  sha256: string | null;
  engine: string | null;
  min_replicas: number;
  max_replicas: number;
  idle_seconds: number;
  pool: string;
  /** protocol `GpuRequirement`: nvidia, apple, amd, intel, any, none. */
  gpu: string;
  min_vram_bytes: number | null;
  /** Comma-separated ISO 3166 alpha-2 codes; "" for anywhere. */
  countries: string;
  region: string | null;
  /** "low-carbon" or null (placement ranks by load). */
  prefer: string | null;
  context_size: number | null;
  /** A llama.cpp type machines convert the GGUF source to ("Q8_0"); null: served as fetched. */
  quantize: string | null;
  created_at: number;
}

/** A deployment's replica that a gateway placed on a machine; (machine_id, model) is the key. */
export interface ReplicaPlacementTable {
  machine_id: string;
  model: string;
  /** The deployment, by workspace and creation time (a deployment made again is another one). */
  workspace_id: string;
  deployment_created_at: number;
  placed_at: number;
  /** Why placement chose the machine, in a sentence; null for placements recorded before it was kept. */
  reason: string | null;
}

/**
 * A job: a command or function to run on a machine that fits. The queue is the QUEUED rows in the
 * order (priority desc, queued_at, id); a gateway claims one by moving it from QUEUED to ASSIGNED in
 * one conditional UPDATE, so two gateway replicas never assign the same job.
 */
export interface JobTable {
  id: string;
  workspace_id: string;
  /** The API key that submitted it (null once that key is gone). */
  key_id: string | null;
  /** Given by the submitter: the same key in the same workspace returns the job made first. */
  idempotency_key: string | null;
  /** JSON: what to run, where, with what (the API's job spec). */
  spec: string;
  priority: number;
  /** Microseconds since the epoch when first queued; a retry keeps it (its place in the queue). */
  queued_at: number;
  state: string;
  /** Why it is in its state, in a sentence (a wait's reason, a failure's cause). */
  reason: string | null;
  /** 1 for the first run, then one more per retry. */
  attempt: number;
  /** Runs after the first allowed when it fails or its machine is lost. */
  max_retries: number;
  machine_id: string | null;
  /** Counts transitions: each one's event is numbered by it. */
  version: number;
  exit_code: number | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  /** JSON array of the GPU indexes its run was given; null for a CPU job or before it is assigned. */
  gpus: string | null;
  /** Log lines received so far, all attempts (each line's number; some may have been dropped since). */
  log_lines: Generated<number>;
  /** The last agent event of the current run kept here: a re-attach asks for what came after. */
  agent_seq: Generated<number>;
  /** The id of the request that submitted it (its answer's x-request-id); null before it was kept. */
  request_id: Generated<string | null>;
}

/** One transition of a job, kept in order (job_id, seq). */
export interface JobEventTable {
  job_id: string;
  seq: number;
  at: number;
  state: string;
  reason: string | null;
  machine_id: string | null;
}

/** One line a job wrote, numbered per job from 1 across its attempts. */
export interface JobLogTable {
  job_id: string;
  seq: number;
  at: number;
  attempt: number;
  stream: string;
  line: string;
}

/** Bytes a workspace uploaded as a job input, or a job's output, by content. */
export interface JobBlobTable {
  workspace_id: string;
  sha256: string;
  size: number;
  /** base64. */
  data: string;
  created_at: number;
}

/** A file a job left under $B9_OUTPUT_DIR (its bytes are a job_blobs row of the job's workspace). */
export interface JobOutputTable {
  job_id: string;
  name: string;
  attempt: number;
  sha256: string;
  size: number;
  at: number;
}

/**
 * The footprint columns of usage and job_usage (SCI's E × I, location-based): null when nothing was
 * measured, never zero. co2e_g = energy_wh × pue × grid_intensity / 1000.
 */
export interface FootprintColumns {
  energy_wh: Generated<number | null>;
  /** counter, power_sampled, util_tdp or static (protocol/energy.ts). */
  energy_method: Generated<string | null>;
  /** high, medium or low: how sure the energy figure is. */
  energy_confidence: Generated<string | null>;
  pue: Generated<number | null>;
  /** The machine's country (ISO 3166-1 alpha-2). */
  grid_zone: Generated<string | null>;
  /** gCO2e per kWh. */
  grid_intensity: Generated<number | null>;
  /** e.g. "ember:2023" (the shipped table) or "live:HOST". */
  intensity_source: Generated<string | null>;
  intensity_year: Generated<number | null>;
  intensity_confidence: Generated<string | null>;
  co2e_g: Generated<number | null>;
  /** "location" (grid average where the machine is). */
  carbon_basis: Generated<string | null>;
}

/** What one run of a job used on its machine: runtime × the CPUs and GPUs it asked for. */
export interface JobUsageTable extends FootprintColumns {
  job_id: string;
  attempt: number;
  workspace_id: string;
  machine_id: string;
  started_at: number;
  ended_at: number;
  cpu_seconds: number;
  gpu_seconds: number;
}

/** One inference request through the gateway, as metering recorded it. */
export interface UsageTable extends FootprintColumns {
  id: string;
  key_id: string;
  workspace_id: string;
  /** The model as the client named it. */
  model: string;
  /** The machine that answered; null when none did (unknown model, no capacity, rate limited). */
  machine_id: string | null;
  /**
   * The HTTP status the client got; 502 when an answer that had started was cut off or ended with an
   * error event, 499 when the client left before the end.
   */
  status: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** From the request's arrival to the end of its answer. */
  latency_ms: number;
  /** From the request's arrival to the first byte of the machine's answer; null when none came. */
  ttfb_ms: number | null;
  started_at: number;
  /** The request's id, as its answer's x-request-id and the gateway's and agent's logs say; null before it was kept. */
  request_id: string | null;
}

export interface SettingTable {
  key: string;
  value: string;
}

/** A running gateway replica on a shared store (PostgreSQL). */
export interface GatewayReplicaTable {
  id: string;
  /** Where its peers reach it (its --advertise-url). */
  url: string;
  started_at: number;
  last_seen_at: number;
  /** Machines whose agent channel it holds. */
  machines: number;
  /** JSON: model name → machines connected to it that serve it ready. */
  served: string;
  /** JSON: machine id → that machine as this replica sees it (status, what it serves). */
  held: string;
  /** When `held` was last rewritten (ms since the epoch; 0: unknown): peers read it only when this moved. */
  held_at: number;
  /** JSON: API key id → [requests, tokens] admitted and charged here since the key's first recent use. */
  spent: string;
}

/** One audit event; its hash covers the canonical JSON of the event as shown (with prev_hash). */
export interface AuditEventTable {
  /** The gateway replica that wrote it: one hash chain each, so replicas need no lock. */
  chain: string;
  /** From 1 within its chain; orders the chain (not `at`, which a clock may move back). */
  seq: number;
  at: number;
  actor_type: string;
  actor_id: string | null;
  /** For filtering a workspace's own events; the hash covers `workspace`, its name. */
  workspace_id: string | null;
  workspace: string | null;
  action: string;
  resource: string | null;
  outcome: string;
  request_id: string | null;
  /** JSON object; secrets only as keyed HMACs. */
  details: string;
  prev_hash: string;
  hash: string;
}

/** A chain's head at `seq`, signed (Ed25519) by the replica's key in its data dir. */
export interface AuditCheckpointTable {
  chain: string;
  seq: number;
  hash: string;
  at: number;
  /** base64 Ed25519 signature over the canonical JSON of {chain, seq, hash, at}. */
  signature: string;
  key_id: string;
  /** The signer's public key (SPKI PEM); verify trusts it only when it matches one the operator gives. */
  public_key: string;
}

/** Retention removed a chain's events up to `through_seq` (a checkpoint's); the only delete allowed. */
export interface AuditPruneTable {
  chain: string;
  through_seq: number;
  at: number;
}

/** What a machine said of a model it pulled for a deployment; (workspace_id, model, machine_id, sha256) is the key. */
export interface ModelProvenanceTable {
  workspace_id: string;
  model: string;
  machine_id: string;
  /** "" when the machine did not know it (an Ollama model before Ollama pulled it). */
  sha256: string;
  source: string;
  format: string;
  /** SPDX id or the file's own words; null when neither the file nor the model card says. */
  license: string | null;
  /** "gguf" or "model_card". */
  license_source: string | null;
  base_model: string | null;
  architecture: string | null;
  parameter_count: number | null;
  quantization: string | null;
  context_length: number | null;
  /** Which deployment it was pulled for (with workspace and model). */
  deployment_created_at: number;
  first_pulled_at: number;
  last_pulled_at: number;
}

export interface Database {
  workspaces: WorkspaceTable;
  pools: PoolTable;
  join_tokens: JoinTokenTable;
  machines: MachineTable;
  machine_removals: MachineRemovalTable;
  api_keys: ApiKeyTable;
  deployments: DeploymentTable;
  replica_placements: ReplicaPlacementTable;
  jobs: JobTable;
  job_events: JobEventTable;
  job_logs: JobLogTable;
  job_blobs: JobBlobTable;
  job_outputs: JobOutputTable;
  job_usage: JobUsageTable;
  usage: UsageTable;
  settings: SettingTable;
  gateway_replicas: GatewayReplicaTable;
  model_provenance: ModelProvenanceTable;
  audit_events: AuditEventTable;
  audit_checkpoints: AuditCheckpointTable;
  audit_prunes: AuditPruneTable;
}

export type { Generated };
