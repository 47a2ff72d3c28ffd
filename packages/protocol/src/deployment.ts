import { type Static, Type } from "typebox";
import { EngineName, StoredModelView } from "./inference.ts";
import { CountryCode, Name } from "./machine.ts";

export const GpuRequirement = Type.Union([
  Type.Literal("nvidia"),
  Type.Literal("apple"),
  Type.Literal("amd"),
  Type.Literal("intel"),
  Type.Literal("any"),
  Type.Literal("none"),
]);
export type GpuRequirement = Static<typeof GpuRequirement>;

/**
 * What clients call the model, Ollama-style ("llama3.2:1b", "library/qwen2.5:7b"): it appears in URL
 * paths, tables and logs, so no spaces or control characters, and never "." or "..".
 */
export const DeploymentName = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: "^[a-zA-Z0-9][a-zA-Z0-9._:/@+-]*$",
});

/**
 * A deployment: a model the gateway keeps servable. Replicas are placed on machines that fit, loaded
 * on the first request when none runs (min 0: scale to zero), and unloaded after `idle_seconds`.
 */
export const CreateDeployment = Type.Object(
  {
    name: DeploymentName,
    /** Where agents fetch it: http(s)://…, hf:ORG/REPO/FILE.gguf, hf:ORG/REPO[/FOLDER] (safetensors), ollama:NAME:TAG, or a path the machine's owner allowed. */
    source: Type.String({ minLength: 1, maxLength: 2048 }),
    sha256: Type.Optional(Type.String({ pattern: "^[a-f0-9]{64}$" })),
    engine: Type.Optional(EngineName),
    /** Replicas kept running even when idle; default 0 (scale to zero). */
    min_replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 64 })),
    /** At most this many replicas; default 1, or min_replicas when that is more. */
    max_replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    /** Unload a replica after this long without requests; default 300. */
    idle_seconds: Type.Optional(Type.Integer({ minimum: 10, maximum: 7 * 24 * 3600 })),
    /** Default "external". */
    pool: Type.Optional(Name),
    /** Default "any": no constraint on the GPU (or its absence). */
    gpu: Type.Optional(GpuRequirement),
    min_vram_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
    /** ISO 3166 alpha-2 codes of the countries replicas may run in. */
    countries: Type.Optional(Type.Array(CountryCode, { maxItems: 64, uniqueItems: true })),
    /** "eu": only machines in EU member states. */
    region: Type.Optional(Type.Literal("eu")),
    /**
     * "low-carbon": among the machines that fit, replicas go first where the fewest gCO2e per 1,000
     * tokens are expected (that machine's measured Wh per 1,000 tokens × its PUE × its grid's intensity).
     */
    prefer: Type.Optional(Type.Literal("low-carbon")),
    context_size: Type.Optional(Type.Integer({ minimum: 256, maximum: 1_048_576 })),
    /** A llama.cpp type ("Q4_K_M"): each machine converts the GGUF source to it once, and serves that. */
    quantize: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  },
  { additionalProperties: false },
);
export type CreateDeployment = Static<typeof CreateDeployment>;

export const DeploymentView = Type.Object({
  name: Type.String(),
  workspace: Type.String(),
  source: Type.String(),
  sha256: Type.Union([Type.String(), Type.Null()]),
  engine: Type.Union([EngineName, Type.Null()]),
  min_replicas: Type.Integer(),
  max_replicas: Type.Integer(),
  idle_seconds: Type.Integer(),
  pool: Type.String(),
  gpu: GpuRequirement,
  min_vram_bytes: Type.Union([Type.Integer(), Type.Null()]),
  countries: Type.Array(Type.String()),
  region: Type.Union([Type.Literal("eu"), Type.Null()]),
  prefer: Type.Union([Type.Literal("low-carbon"), Type.Null()]),
  context_size: Type.Union([Type.Integer(), Type.Null()]),
  /** The type machines convert the source to (null: served as fetched); absent from older gateways. */
  quantize: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  created_at: Type.String({ format: "date-time" }),
});
export type DeploymentView = Static<typeof DeploymentView>;
export const DeploymentList = Type.Object({ deployments: Type.Array(DeploymentView) });
export type DeploymentList = Static<typeof DeploymentList>;

/** A replica: one machine serving one deployment, as `b9 model ps` shows it. */
export const ReplicaView = Type.Object({
  deployment: Type.String(),
  machine_id: Type.String(),
  machine_name: Type.String(),
  state: Type.String(),
  engine: Type.String(),
  memory_bytes: Type.Union([Type.Number(), Type.Null()]),
  outstanding: Type.Integer(),
  last_request_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  /** Why placement chose this machine, in a sentence; null for a replica placed before this was kept. */
  placed_because: Type.Union([Type.String(), Type.Null()]),
});
export type ReplicaView = Static<typeof ReplicaView>;
export const ReplicaList = Type.Object({ replicas: Type.Array(ReplicaView) });
export type ReplicaList = Static<typeof ReplicaList>;

/**
 * `POST /api/v1/deployments/:name/pull` (scope inference; no body, or `{}`): put the deployment's
 * model on the machines that will serve it, before any request needs it. Machines serving it already
 * need nothing; otherwise placement picks max(1, min_replicas) machines (a machine that fails is
 * replaced by the next one that fits, up to two more tries) and each agent pulls the model into its
 * store. Nothing is loaded: the first request then only starts the engine.
 *
 * Errors found before anything is pulled are ordinary JSON errors (401, 403, 404 `not_found` for an
 * unknown deployment, 503 `unavailable` when no machine fits). Otherwise the answer is 200
 * `application/x-ndjson`, one event per line:
 *
 *   {"status":"pulling on gpu-box-1","machine_id":"m_…","machine_name":"gpu-box-1"}
 *   {"status":"pulling manifest","machine_id":…,"machine_name":…}
 *   {"status":"pulling llama3.2:1b","digest":"sha256:…","total":807694464,"completed":1048576,"machine_id":…,"machine_name":…}
 *   {"status":"verifying sha256 digest",…}   {"status":"writing manifest",…}
 *   {"status":"success","model":{…StoredModelView},"machines":[{"id":"m_…","name":"gpu-box-1"}]}
 *
 * Progress lines carry `total`/`completed` (bytes) while bytes move, or with `unit: "tensors"` while a
 * machine converts the model to the deployment's `quantize` type ("quantizing NAME to Q8_0"); `digest` only when known ahead
 * (a deployment with sha256). Statuses while bytes move depend on the source: "pulling NAME"
 * (http, hf:), "copying" or "hashing" (a local file), Ollama's own lines (ollama:). A machine already
 * serving the model gives `{"status":"already on NAME",…}`; a machine that failed gives
 * `{"status":"could not pull on NAME: why",…}` before the next is tried. The last line is either
 * `status: "success"` (`model` is null when every machine already served it) or
 * `{"status":"error","error":{"code":"download_failed","message":"…"}}` with a code of ErrorCodes.
 * Closing the connection stops the pulls.
 */
export const DeploymentPullEvent = Type.Object({
  status: Type.String(),
  machine_id: Type.Optional(Type.String()),
  machine_name: Type.Optional(Type.String()),
  digest: Type.Optional(Type.String()),
  total: Type.Optional(Type.Number()),
  completed: Type.Optional(Type.Number()),
  /** What total/completed count when not bytes: "tensors" while a machine converts (--quantize). */
  unit: Type.Optional(Type.Literal("tensors")),
  /** On "success": what the (last) agent recorded; null when nothing was pulled. */
  model: Type.Optional(Type.Union([StoredModelView, Type.Null()])),
  /** On "success": the machines that have the model now. */
  machines: Type.Optional(Type.Array(Type.Object({ id: Type.String(), name: Type.String() }))),
  /** On "error". */
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});
export type DeploymentPullEvent = Static<typeof DeploymentPullEvent>;
