import { type Static, Type } from "typebox";

/*
 * The fork's inference lifecycle on the agent's control API, now for every engine:
 * POST /inference/start, POST /inference/stop, GET /inference/status, POST /inference/pull.
 */

export const EngineName = Type.Union([
  Type.Literal("builtin"),
  Type.Literal("ollama"),
  Type.Literal("llamacpp"),
  Type.Literal("vllm"),
  Type.Literal("sglang"),
  Type.Literal("mlx"),
]);

/** A model name as clients use it; the agent's model store checks the exact rules and says what is wrong. */
export const ModelName = Type.String({ minLength: 1, maxLength: 128 });

/**
 * The one form of a model name everywhere (gateway lookups, store uniqueness, the agent's model store):
 * names are case-insensitive, so "Victim" and "victim" are one model and can never be two owners' models.
 */
export function canonicalModelName(name: string): string {
  return name.toLowerCase();
}

/**
 * Who a stored or served model belongs to, as a gateway tells an agent: the deployment's workspace id.
 * Absent, the machine's owner (a pull or start by hand). One owner's pull never replaces another's model.
 */
export const ModelOwner = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9:_-]+$" });

/** What a converted model was made from, with what; `converted_on` when another machine of the pool made it (a copy). */
export const ConvertedFromView = Type.Object({
  name: Type.String({ maxLength: 256 }),
  sha256: Type.String({ maxLength: 64 }),
  format: Type.String({ maxLength: 32 }),
  quantization: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
  target: Type.String({ maxLength: 32 }),
  converter: Type.Object({
    tool: Type.String({ maxLength: 256 }),
    version: Type.String({ maxLength: 512 }),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
  }),
  /** The machine that made the conversion these bytes copy (fetched through the gateway, sha256 checked). */
  converted_on: Type.Optional(Type.String({ maxLength: 256 })),
});
export type ConvertedFromView = Static<typeof ConvertedFromView>;

/** Another machine's conversion, as a gateway offers it with a pull or a start (see POOL_COPY_PATH). */
const POOL_OFFER = {
  /** Lets this machine, and no other, fetch these bytes through the gateway for a while. */
  ticket: Type.String({ minLength: 32, maxLength: 128, pattern: "^[A-Za-z0-9_-]+$" }),
  /** Of the GGUF; of a directory (safetensors, MLX), over its files' sha256s as its b9-conversion.json lists them. */
  sha256: Type.String({ pattern: "^[a-f0-9]{64}$" }),
  size: Type.Integer({ minimum: 1 }),
  /** The machine that holds it (it made the conversion, or holds a copy), for the record and the log. */
  machine_name: Type.String({ minLength: 1, maxLength: 256 }),
  converted_from: ConvertedFromView,
};

/** A conversion an engine loads as a directory, offered with a start: used only for the format the start needs. */
export const PoolDirOffer = Type.Object(
  { ...POOL_OFFER, format: Type.Union([Type.Literal("safetensors"), Type.Literal("mlx")]) },
  { additionalProperties: false },
);
export type PoolDirOffer = Static<typeof PoolDirOffer>;

export const InferenceStartRequest = Type.Object(
  {
    model: Type.Optional(ModelName),
    engine: Type.Optional(EngineName),
    /** Context length to serve with. */
    context_size: Type.Optional(Type.Integer({ minimum: 256, maximum: 1_048_576 })),
    /** Started by a gateway for a deployment: a gateway unloads it once no deployment has the name. */
    deployment: Type.Optional(Type.Boolean()),
    /** The deployment's owner: the agent refuses to start, under this owner, a model stored for another. */
    owner: Type.Optional(ModelOwner),
    /**
     * Conversions other machines made of this deployment for engines that take no GGUF: a start that
     * needs one of these formats copies it through the gateway instead of converting (a failure converts).
     */
    pool: Type.Optional(Type.Array(PoolDirOffer, { maxItems: 4 })),
  },
  { additionalProperties: false },
);
export type InferenceStartRequest = Static<typeof InferenceStartRequest>;

export const InferenceStopRequest = Type.Object(
  { model: Type.Optional(ModelName) },
  { additionalProperties: false },
);
export type InferenceStopRequest = Static<typeof InferenceStopRequest>;

export const InferencePullRequest = Type.Object(
  {
    model: ModelName,
    /** Where to get it: a path the owner allowed, http(s)://…, hf:ORG/REPO/FILE.gguf, hf:ORG/REPO[/FOLDER] (safetensors), ollama:NAME:TAG. */
    source: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })),
    sha256: Type.Optional(Type.String({ pattern: "^[a-f0-9]{64}$" })),
    /** For whom (see ModelOwner); absent, the machine's owner. */
    owner: Type.Optional(ModelOwner),
    /**
     * The pool's operator gave the source, so it may name loopback, link-local or private addresses.
     * A source a gateway sends for anyone else may not, unless the agent's config allows the address.
     */
    source_trusted: Type.Optional(Type.Boolean()),
    /** Stream progress as NDJSON (also when the request accepts application/x-ndjson). */
    stream: Type.Optional(Type.Boolean()),
    /**
     * A llama.cpp type ("Q4_K_M", see QUANTIZATION_TYPES): the source is pulled, then converted once,
     * and `model` names the converted GGUF (the source stays stored as `model`'s source name).
     */
    quantize: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    /**
     * Another machine of the pool has this deployment's conversion already: fetch its bytes through the
     * gateway (POOL_COPY_PATH) instead of converting again. Checked against `pool.sha256`; any failure
     * falls back to the source and a conversion on this machine.
     */
    pool: Type.Optional(Type.Object(POOL_OFFER, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type InferencePullRequest = Static<typeof InferencePullRequest>;

export const ServedModelView = Type.Object({
  name: Type.String(),
  engine: Type.String(),
  state: Type.String(),
  memory_bytes: Type.Union([Type.Number(), Type.Null()]),
  context_size: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Optional(Type.String()),
  /** A gateway started it for a deployment (absent: the machine's owner started it by hand). */
  deployment: Type.Optional(Type.Boolean()),
  /**
   * The format its engine loads, when not the stored model's: the machine converted it for an engine
   * that takes no other (a GGUF dequantised to safetensors for vLLM or SGLang).
   */
  converted_to: Type.Optional(Type.String()),
  /** With converted_to: the converted directory, by the sha256 over its files, and its provenance. */
  conversion: Type.Optional(
    Type.Object({ sha256: Type.String(), size: Type.Number(), converted_from: ConvertedFromView }),
  ),
});
export type ServedModelView = Static<typeof ServedModelView>;

export const EngineView = Type.Object({
  engine: Type.String(),
  installed: Type.Boolean(),
  version: Type.Optional(Type.String()),
  accelerators: Type.Array(Type.String()),
  formats: Type.Array(Type.String()),
  reason: Type.Optional(Type.String()),
});
export type EngineView = Static<typeof EngineView>;

export const InferenceStatus = Type.Object({
  /** stopped | starting | running | error */
  status: Type.String(),
  running: Type.Boolean(),
  /** The agent's own OpenAI-compatible base URL (authenticated); engines themselves stay on loopback. */
  endpoint: Type.Union([Type.String(), Type.Null()]),
  models: Type.Array(ServedModelView),
  engines: Type.Array(EngineView),
  error: Type.Optional(Type.String()),
  /** What a start or stop did, in a sentence (the fork's agents answered with one). */
  message: Type.Optional(Type.String()),
});
export type InferenceStatus = Static<typeof InferenceStatus>;

export const StoredModelView = Type.Object({
  name: Type.String(),
  /** Null for an Ollama model until Ollama has pulled it. */
  sha256: Type.Union([Type.String(), Type.Null()]),
  size: Type.Union([Type.Number(), Type.Null()]),
  source: Type.String(),
  format: Type.String(),
  license: Type.Union([Type.String(), Type.Null()]),
  /** Where the licence was read (agents before provenance say nothing). */
  license_source: Type.Optional(Type.Union([Type.Literal("gguf"), Type.Literal("model_card"), Type.Null()])),
  /** The model it was made from (GGUF general.base_model.*, or the model card's base_model). */
  base_model: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  architecture: Type.Union([Type.String(), Type.Null()]),
  parameter_count: Type.Union([Type.Number(), Type.Null()]),
  quantization: Type.Union([Type.String(), Type.Null()]),
  context_length: Type.Union([Type.Integer(), Type.Null()]),
  /** For a model made by converting another on the machine: what from, to what, with which tool. */
  converted_from: Type.Optional(ConvertedFromView),
});
export type StoredModelView = Static<typeof StoredModelView>;

/** One NDJSON line of pull progress; the last line has status "success" (or an error). */
export const PullProgress = Type.Object({
  status: Type.String(),
  /** "sha256:…" of the bytes being pulled, when known before they arrive. */
  digest: Type.Optional(Type.String()),
  completed: Type.Optional(Type.Number()),
  total: Type.Optional(Type.Number()),
  /** What completed/total count when not bytes: "tensors" while a conversion runs. */
  unit: Type.Optional(Type.Literal("tensors")),
  model: Type.Optional(StoredModelView),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});
export type PullProgress = Static<typeof PullProgress>;

/** What the heartbeat says about inference on the machine. */
export const InferenceReport = Type.Object({
  engines: Type.Array(Type.Object({ engine: Type.String(), installed: Type.Boolean() }), { maxItems: 16 }),
  models: Type.Array(ServedModelView, { maxItems: 256 }),
  memory_free_bytes: Type.Number({ minimum: 0 }),
  vram_free_bytes: Type.Union([Type.Number({ minimum: 0 }), Type.Null()]),
});
export type InferenceReport = Static<typeof InferenceReport>;
