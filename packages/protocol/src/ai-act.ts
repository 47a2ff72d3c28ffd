import { type Static, Type } from "typebox";

/**
 * Every inference answer a machine gave carries this header, "true": a machine-readable mark that
 * the content is AI-generated (EU AI Act Art. 50(2)).
 */
export const AI_GENERATED_HEADER = "x-beta9-ai-generated";

/** A licence that no record states: said so, never guessed. */
export const UNKNOWN_LICENSE = "unknown";

export const AiActReportQuery = Type.Object(
  {
    workspace: Type.String({ minLength: 1, maxLength: 64 }),
    from: Type.String({ minLength: 1, maxLength: 64 }),
    to: Type.String({ minLength: 1, maxLength: 64 }),
  },
  { additionalProperties: false },
);
export type AiActReportQuery = Static<typeof AiActReportQuery>;

const NullableString = Type.Union([Type.String(), Type.Null()]);
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

/** A machine a model was pulled on, and where it is. */
export const AiActMachine = Type.Object({
  id: Type.String(),
  name: NullableString,
  country: Type.Union([Type.String(), Type.Null()]),
  first_pulled_at: Type.String(),
});

/** One model the workspace deployed, as the machines that pulled it recorded it. */
export const AiActModel = Type.Object({
  name: Type.String(),
  sha256: Type.Union([Type.String(), Type.Null()]),
  source: Type.String(),
  /** The hf: revision or the URL fetched; null for a file the operator gave. */
  revision: NullableString,
  /** An SPDX id (or the file's own words); "unknown" when no record states one. */
  license: Type.String(),
  /** Where the licence was read: the GGUF metadata, the model card, or nowhere. */
  license_source: Type.Union([Type.Literal("gguf"), Type.Literal("model_card"), Type.Null()]),
  base_model: NullableString,
  architecture: NullableString,
  parameter_count: NullableNumber,
  quantization: NullableString,
  context_length: NullableNumber,
  /** When the deployment was made; null when it was removed since (its pulls remain). */
  deployed_at: NullableString,
  /** Who made it, from the audit log; null when the log does not say. */
  deployed_by: NullableString,
  machines: Type.Array(AiActMachine),
  countries: Type.Array(Type.String()),
});
export type AiActModel = Static<typeof AiActModel>;

export const AiActUsage = Type.Object({
  model: Type.String(),
  requests: Type.Integer(),
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  /** Answers with a measured energy (the sums leave the others out, never count them as zero). */
  measured: Type.Integer(),
  energy_wh: Type.Number(),
  co2e_g: Type.Number(),
  /** Share of requests answered 5xx (or cut off), and refused 4xx (limits, policy, bad input). */
  error_rate: Type.Number(),
  refusal_rate: Type.Number(),
});
export type AiActUsage = Static<typeof AiActUsage>;

export const AiActIncident = Type.Object({
  /** "failed_requests" (usage rows by status) or "security_event" (the audit log). */
  kind: Type.String(),
  cause: Type.String(),
  count: Type.Integer(),
});
export type AiActIncident = Static<typeof AiActIncident>;

export const AiActAudit = Type.Object({
  /** Whether the chains were verified; false with `note` saying why when they could not be. */
  verified: Type.Boolean(),
  ok: Type.Union([Type.Boolean(), Type.Null()]),
  note: Type.String(),
  chains: Type.Array(
    Type.Object({
      chain: Type.String(),
      events: Type.Integer(),
      first_broken_seq: Type.Union([Type.Integer(), Type.Null()]),
    }),
  ),
  checkpoints: Type.Array(Type.Object({ chain: Type.String(), seq: Type.Integer(), hash: Type.String() })),
  /** Whether the workspace's inference events keep prompts and answers (its GDPR choice), in a sentence. */
  content: Type.String(),
});
export type AiActAudit = Static<typeof AiActAudit>;

/** A section of the pack and the articles or annexes of Regulation (EU) 2024/1689 it supports. */
export const AiActSection = Type.Object({ id: Type.String(), title: Type.String(), supports: Type.String() });
export type AiActSection = Static<typeof AiActSection>;

export const AiActReport = Type.Object({
  workspace: Type.String(),
  from: Type.String(),
  to: Type.String(),
  generated_at: Type.String(),
  /** The gateway that answered (its version), so a reader knows what produced the facts. */
  generator: Type.String(),
  sections: Type.Array(AiActSection),
  models: Type.Array(AiActModel),
  usage: Type.Array(AiActUsage),
  incidents: Type.Array(AiActIncident),
  audit: AiActAudit,
  transparency: Type.Object({ header: Type.String(), value: Type.String(), statement: Type.String() }),
  not_covered: Type.Array(Type.String()),
});
export type AiActReport = Static<typeof AiActReport>;
